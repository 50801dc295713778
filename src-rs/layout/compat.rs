//! The `sqlite-s3vfs` layout: the Python library's exact format. A file is stored as
//! `{prefix}/{block:010}` objects of `blockSize` bytes (the last may be shorter) and its size is
//! the sum of the object sizes; the rollback journal of `{prefix}` is the file `{prefix}-journal`.

use super::block_map::{cut_block0, BlockMap, BlockReader, Location};
use super::import::{Import, ImportEnd};
use super::versioned::format::Pointer;
use super::versioned::map::EarlyNaming;
use crate::error::Result;
use crate::store::{
    delete_keys, list_all, DynStore, GetOptions, GetOutcome, ObjectMeta, ObjectStore, PutMode,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Names the block objects of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockKeys {
    file_prefix: String,
}

impl BlockKeys {
    pub fn new(file_prefix: impl Into<String>) -> Self {
        BlockKeys {
            file_prefix: file_prefix.into(),
        }
    }

    pub fn key(&self, block: u64) -> String {
        format!("{}/{block:010}", self.file_prefix)
    }

    /// The LIST prefix that finds every block of the file.
    pub fn list_prefix(&self) -> String {
        format!("{}/", self.file_prefix)
    }

    /// The block index of a key of this file, if it is one.
    pub fn parse(&self, key: &str) -> Option<u64> {
        let rest = key.strip_prefix(&self.list_prefix())?;
        (rest.len() == 10 && rest.bytes().all(|b| b.is_ascii_digit()))
            .then(|| rest.parse().ok())
            .flatten()
    }
}

/// A file's blocks in this layout: fixed keys, rewritten in place; a missing one reads as zeros
/// (like the Python library).
pub struct CompatMap {
    pub keys: BlockKeys,
}

impl CompatMap {
    pub fn new(keys: BlockKeys) -> Self {
        CompatMap { keys }
    }
}

impl BlockMap for CompatMap {
    fn locate(&self, i: u64) -> Result<Location> {
        Ok(Location::Object(self.keys.key(i), None))
    }

    fn prepare<'a>(
        &'a mut self,
        _: &'a dyn ObjectStore,
        _: &mut dyn Iterator<Item = u64>,
    ) -> Option<BoxFuture<'a, Result<()>>> {
        None
    }

    fn trim(&mut self) {}

    fn reader(&self) -> Arc<dyn BlockReader> {
        Arc::new(CompatReader)
    }

    fn in_place(&self) -> bool {
        true
    }

    fn cut(&self, count: u64, old_count: u64) -> Vec<String> {
        (count..old_count).map(|i| self.keys.key(i)).collect()
    }

    fn early(&self) -> Option<EarlyNaming> {
        None
    }
}

/// What an export of the database at `prefix` starts from: its map, its size (from the header
/// in block 0; a LIST only when the header cannot tell), and block 0 cut to the file.
pub async fn export_start(
    store: &dyn ObjectStore,
    prefix: &str,
    block_size: u64,
) -> Result<(CompatMap, u64, Option<Bytes>)> {
    let map = CompatMap::new(BlockKeys::new(prefix));
    let GetOutcome::Found(obj) = store.get(&map.keys.key(0), GetOptions::default()).await? else {
        return Ok((map, 0, None));
    };
    let size = database_size(store, &map.keys, &obj.body).await?;
    check_block_size(
        &format!("{}/{prefix}", store.location()),
        block_size,
        &obj.body,
        size,
        // A commit may be in flight: only what no commit explains (a shorter object where more
        // is needed fails later as ERR_CHANGED_DURING_SERIALIZE).
        false,
    )?;
    Ok((map, size, Some(cut_block0(&obj.body, size, block_size))))
}

/// This layout's half of an import: blocks go to the database's own keys, block 0 last (so a
/// reader sees the old database or the whole new one), and replacing one deletes the blocks
/// past the new end and any journal left behind.
pub struct CompatImport {
    prefix: String,
    keys: BlockKeys,
    /// Objects of the database that was there before (overwrite), to delete past the new end.
    existing: Vec<String>,
    /// Blocks (by index) that may have reached the store.
    uploaded_up_to: u64,
    /// Block 0 may be in the store (its PUT was sent and not proven absent), so the blocks it
    /// describes must stay.
    block0_sent: bool,
    place: String,
}

impl CompatImport {
    /// An import into `prefix` (`exists`: it holds a database of this layout). Replacing one
    /// needs `overwrite`, and the input spooled and checked in full before anything is touched
    /// (the second value: whether to spool).
    pub async fn start(
        store: &dyn ObjectStore,
        prefix: &str,
        exists: bool,
        overwrite: bool,
        place: &str,
    ) -> Result<(CompatImport, bool)> {
        let keys = BlockKeys::new(prefix);
        let mut existing = Vec::new();
        if exists {
            if !overwrite {
                return Err(crate::error::Error::new(
                    crate::error::codes::DATABASE_EXISTS,
                    format!(
                        "{place} already holds a database; pass {{ overwrite: true }} to replace it"
                    ),
                ));
            }
            existing = list_blocks(store, &keys)
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect();
        }
        let import = CompatImport {
            prefix: prefix.to_string(),
            keys,
            existing,
            uploaded_up_to: 0,
            block0_sent: false,
            place: place.to_string(),
        };
        Ok((import, exists))
    }

    async fn finish_import(&mut self, store: &DynStore, end: ImportEnd) -> Result<()> {
        // Objects past the new end (overwrite), and any journal left by an earlier database: a
        // stale journal would be rolled back into the new one.
        let keep = end.blocks;
        let mut doomed = Vec::new();
        for k in &self.existing {
            if self.keys.parse(k).is_some_and(|i| i >= keep) {
                doomed.push(k.clone());
            }
        }
        let journal = BlockKeys::new(journal_prefix(&self.prefix));
        for o in list_blocks(&**store, &journal).await? {
            doomed.push(o.key);
        }
        delete_keys(store.clone(), doomed, end.concurrency).await?;
        let Some(block0) = end.block0 else {
            return Ok(());
        };
        let key0 = self.keys.key(0);
        self.block0_sent = true;
        if let Err(e) = store.put(&key0, block0.clone(), PutMode::Rewrite).await {
            // The PUT may have landed with its answer lost: the store decides, not a guess.
            // Not there (yet) is no proof it will not land: the blocks stay either way.
            if let Ok(GetOutcome::Found(obj)) = store.get(&key0, GetOptions::default()).await {
                if obj.body == block0 {
                    return Ok(());
                }
            }
            return Err(e.context(format!(
                "{}: block 0 of the import may still land, so its other blocks were kept; \
                 run the import again with {{ overwrite: true }}",
                self.place
            )));
        }
        Ok(())
    }
}

impl Import for CompatImport {
    fn block(&mut self, i: u64, data: Bytes) -> Result<(String, Bytes, PutMode)> {
        self.uploaded_up_to = i + 1;
        // The database's own keys, rewritten in place.
        Ok((self.keys.key(i), data, PutMode::Rewrite))
    }

    fn finish<'a>(&'a mut self, store: &'a DynStore, end: ImportEnd) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.finish_import(store, end))
    }

    fn abort<'a>(&'a mut self, store: &'a DynStore, concurrency: usize) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.block0_sent {
                // Block 0 may have landed and describes these blocks: they stay.
                return;
            }
            if !self.existing.is_empty() {
                // Replacing a database: bad input was refused before anything was uploaded; a
                // store failure mid-upload leaves what it leaves (this layout has no atomic
                // commit).
                return;
            }
            let keys: Vec<String> = (1..self.uploaded_up_to).map(|i| self.keys.key(i)).collect();
            let _ = delete_keys(store.clone(), keys, concurrency).await;
        })
    }
}

/// Objects are the blocks' bytes as they are.
struct CompatReader;

impl BlockReader for CompatReader {
    fn decode(
        &self,
        key: &str,
        _: u64,
        pointer: Option<&Pointer>,
        stored: Bytes,
        _: u64,
    ) -> Result<Bytes> {
        // Only the versioned layout names objects by map entries (or uploads blocks early).
        if pointer.is_some() {
            return Err(crate::error::Error::internal(format!(
                "{key}: a map entry for a block rewritten in place"
            )));
        }
        Ok(stored)
    }

    fn missing(&self, _: &str) -> Result<Bytes> {
        Ok(Bytes::new())
    }
}

/// The file's blocks as a LIST finds them (other keys under the prefix are skipped).
pub async fn list_blocks(store: &dyn ObjectStore, keys: &BlockKeys) -> Result<Vec<ObjectMeta>> {
    let mut objects = list_all(store, &keys.list_prefix()).await?;
    objects.retain(|o| keys.parse(&o.key).is_some());
    Ok(objects)
}

/// The file's size as the Python library defines it: the sum of its objects' sizes. One LIST
/// per 1,000 blocks, so only for when the database header cannot tell.
pub async fn listed_size(store: &dyn ObjectStore, keys: &BlockKeys) -> Result<u64> {
    Ok(list_blocks(store, keys).await?.iter().map(|o| o.size).sum())
}

/// A database's size, given its block 0: page count x page size from the header when SQLite
/// would trust it (no request), else the listed size.
pub async fn database_size(
    store: &dyn ObjectStore,
    keys: &BlockKeys,
    block0: &[u8],
) -> Result<u64> {
    match crate::sqlite_header::file_size(block0) {
        Some(size) => Ok(size),
        None => listed_size(store, keys).await,
    }
}

/// The `sqlite-s3vfs` layout records no block size, but its objects tell: every block but the
/// last is exactly `block_size` bytes. Given block 0 (`len0` bytes) of a file of `size` bytes,
/// an error when `block_size` cannot be the one it was written with (reading on would return
/// other pages than SQLite wrote: a missing block reads as zeros).
///
/// Block 0 longer than a block is always wrong. Block 0 shorter than a block while the header
/// says more follows is wrong only when no commit is in flight (`settled`): a writer that grows
/// the file writes page 1 (the header) before the pages that fill block 0.
pub fn check_block_size(
    place: &str,
    block_size: u64,
    block0: &[u8],
    size: u64,
    settled: bool,
) -> Result<()> {
    // Not a database at all: SQLite says so (SQLITE_NOTADB), better than a block size would.
    if !crate::sqlite_header::has_magic(block0) {
        return Ok(());
    }
    let len0 = block0.len() as u64;
    let written_with = if settled && size > len0 && len0 != block_size {
        format!("blockSize {len0}")
    } else if len0 > block_size {
        format!("a blockSize of at least {len0}")
    } else {
        return Ok(());
    };
    Err(crate::error::Error::new(
        crate::error::codes::BLOCK_SIZE_MISMATCH,
        format!(
            "{place} was written with {written_with}, not {block_size} (the sqlite-s3vfs layout \
             does not record it): open it with that blockSize"
        ),
    ))
}

pub fn journal_prefix(prefix: &str) -> String {
    format!("{prefix}-journal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_python_library() {
        let keys = BlockKeys::new("dir/cool.sqlite");
        assert_eq!(keys.key(0), "dir/cool.sqlite/0000000000");
        assert_eq!(keys.key(262144), "dir/cool.sqlite/0000262144");
        assert_eq!(keys.parse("dir/cool.sqlite/0000000042"), Some(42));
        assert_eq!(keys.parse("dir/cool.sqlite/42"), None);
        assert_eq!(keys.parse("dir/cool.sqlite-journal/0000000000"), None);
        assert_eq!(journal_prefix("a/b"), "a/b-journal");
    }

    #[test]
    fn a_block_size_the_objects_contradict_is_an_error() {
        // Right: one full block and more, or a single short one.
        let block0 = |len: usize| {
            let mut b = vec![0u8; len];
            b[..16].copy_from_slice(b"SQLite format 3\0");
            b
        };
        assert!(check_block_size("p", 4096, &block0(4096), 3 * 4096, true).is_ok());
        assert!(check_block_size("p", 65536, &block0(8192), 8192, true).is_ok());
        // Not a database: left to SQLite (SQLITE_NOTADB).
        assert!(check_block_size("p", 4096, &[7; 6400], 6400, true).is_ok());
        // Written with 64 KiB blocks, opened with 4 KiB: exact when more blocks follow.
        let e = check_block_size("p", 4096, &block0(65536), 200_000, true).unwrap_err();
        assert_eq!(e.code, crate::error::codes::BLOCK_SIZE_MISMATCH);
        assert!(
            e.message.contains("at least 65536") || e.message.contains("blockSize 65536"),
            "{}",
            e.message
        );
        // A single object larger than the block size: at least that, settled or not.
        let e = check_block_size("p", 4096, &block0(8192), 8192, false).unwrap_err();
        assert!(e.message.contains("at least 8192"), "{}", e.message);
        // Written with 4 KiB, opened with 64 KiB: block 0 is short while more follows.
        assert!(check_block_size("p", 65536, &block0(4096), 3 * 4096, true).is_err());
        // The same picture mid-commit (a writer growing the file, header first): no error.
        assert!(check_block_size("p", 65536, &block0(8192), 20 * 4096, false).is_ok());
    }
}
