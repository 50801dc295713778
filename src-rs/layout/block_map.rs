//! What a file's blocks are, as its layout names them: the questions `blocks/` asks a layout, so
//! that the block file (buffer, cache, read-ahead) never branches on which layout it serves.
//!
//! The `sqlite-s3vfs` layout answers with fixed keys rewritten in place (`compat::CompatMap`);
//! the versioned layout with a pinned version's block map, its codec, and names unique to each
//! commit attempt (`versioned::map::VersionedMap`).

use super::versioned::format::Pointer;
use super::versioned::map::EarlyNaming;
use crate::error::Result;
use crate::store::ObjectStore;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Where a block's stored content is.
pub enum Location {
    /// Held by the layout itself (the versioned layout's block 0, inside the root).
    Inline(Bytes),
    /// Nothing stored: zeros.
    Zeros,
    /// An object; with the map entry that names it when the layout has one (its checksum is
    /// verified and its codec decodes it, so such objects may also be kept on disk).
    Object(String, Option<Pointer>),
}

/// Block 0 as a file of `size` bytes holds it: what is stored, cut to the file (never past a
/// block).
pub fn cut_block0(stored: &Bytes, size: u64, block_size: u64) -> Bytes {
    let len = size.min(block_size) as usize;
    stored.slice(..len.min(stored.len()))
}

/// A layout's naming of one file's blocks.
pub trait BlockMap: Send {
    // (An export, `streams/serialize.rs`, also reads a file through it.)
    /// Where block `i` is. An entry whose map segment is not loaded is an error, never zeros:
    /// `prepare` runs first.
    fn locate(&self, i: u64) -> Result<Location>;

    /// Loads what `locate` needs for `blocks` (the versioned layout's map segments, those not
    /// cached yet); `None` when the layout needs nothing for them (no wait at all).
    fn prepare<'a>(
        &'a mut self,
        store: &'a dyn ObjectStore,
        blocks: &mut dyn Iterator<Item = u64>,
    ) -> Option<BoxFuture<'a, Result<()>>>;

    /// Between operations: bounds what `prepare` keeps.
    fn trim(&mut self);

    /// Reads blocks' objects for fetches running in the background.
    fn reader(&self) -> Arc<dyn BlockReader>;

    /// Whether objects are rewritten in place, so one may change while it is read (the names
    /// of immutable objects never do: a change there is damage).
    fn in_place(&self) -> bool;

    /// The keys whose content changes when the file is cut from `old_count` blocks to `count`
    /// (a layout that rewrites objects in place; names of immutable objects never go stale).
    fn cut(&self, count: u64, old_count: u64) -> Vec<String>;

    /// How buffered blocks may reach the store before the commit: `None` when they may not (a
    /// layout that rewrites in place keeps them in a temp file instead).
    fn early(&self) -> Option<EarlyNaming>;
}

/// Turns a block's stored object into its content.
pub trait BlockReader: Send + Sync {
    /// Block `i` from the object `key`: checked against `pointer` and decoded when there is one.
    fn decode(
        &self,
        key: &str,
        i: u64,
        pointer: Option<&Pointer>,
        stored: Bytes,
        block_size: u64,
    ) -> Result<Bytes>;

    /// What a block whose object is missing reads as (zeros, or an error).
    fn missing(&self, key: &str) -> Result<Bytes>;
}
