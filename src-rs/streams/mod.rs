//! Whole-database transfers that bypass SQLite: `serialize` reads the blocks in order with
//! pipelined GETs; `deserialize` validates an SQLite file while uploading it in parallel.

pub mod deserialize;
pub mod serialize;
