//! A layout's half of an import (`streams/deserialize.rs` keeps the other half: cutting the
//! input into blocks, checking the header and the size, spooling, and the uploads in flight).
//! The layout says where each block goes, and how the import becomes visible or is undone.

use crate::error::Result;
use crate::store::{DynStore, PutMode};
use bytes::Bytes;
use futures::future::BoxFuture;

/// What the end of an import knows about the file.
pub struct ImportEnd {
    /// Block 0 (never uploaded before the end: readers see the import only once it lands).
    pub block0: Option<Bytes>,
    /// The file's size, and how many blocks were cut from it (block 0 included).
    pub total: u64,
    pub blocks: u64,
    pub block_size: u64,
    pub page_size: u32,
    pub concurrency: usize,
}

pub trait Import: Send {
    /// Block `i` (never 0): the key to PUT it at, the bytes to store, and how.
    fn block(&mut self, i: u64, data: Bytes) -> Result<(String, Bytes, PutMode)>;

    /// After every block's upload: makes the import visible.
    fn finish<'a>(&'a mut self, store: &'a DynStore, end: ImportEnd) -> BoxFuture<'a, Result<()>>;

    /// Deletes what the import uploaded, when nothing can reference it.
    fn abort<'a>(&'a mut self, store: &'a DynStore, concurrency: usize) -> BoxFuture<'a, ()>;

    /// Makes the import look paused since `by` ago (tests of what a long pause risks).
    #[cfg(test)]
    fn pretend_paused(&mut self, _by: std::time::Duration) {}
}
