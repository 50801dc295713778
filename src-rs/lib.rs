//! sqlite-s3vfs: SQLite databases stored in S3, for Node.js. See ARCHITECTURE.md for the layers:
//! napi -> connection -> vfs -> blocks -> layout -> store, with `runtime` bridging sync and async.

#![deny(clippy::all)]

#[macro_use]
extern crate napi_derive;

pub mod blocks;
pub mod clock;
pub mod connection;
pub mod error;
pub mod layout;
mod napi;
pub mod runtime;
pub mod sqlite_header;
pub mod store;
pub mod streams;
pub mod vfs;
