//! A versioned file's blocks as the block file sees them (`BlockMap`): the pinned version's map
//! (block 0 inside the root, the others named by map entries, loaded segment by segment), the
//! codec that reads and writes them, and the names new blocks get before a commit publishes them.

use super::codec::{BlockCodec, Compression};
use super::format::{Pointer, Uploads};
use super::seal::{DatabaseId, Keyring};
use super::{load_segments, version_gone, BlockLocation, Names, SegmentCache, Snapshot};
use crate::error::Result;
use crate::layout::block_map::{cut_block0, BlockMap, BlockReader, Location};
use crate::store::ObjectStore;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

/// The block map of a pinned version (`None` before the first version exists).
pub struct VersionedMap {
    pub names: Names,
    pub snapshot: Option<Arc<Snapshot>>,
    /// Block 0 as readers see it (held in the root).
    pub block0: Bytes,
    pub segments: SegmentCache,
    /// How new blocks are stored (`None`: as the pinned version records).
    pub compression: Option<Compression>,
    /// Encrypted databases: the keys that seal and open its objects.
    pub keys: Option<Arc<Keyring>>,
    /// The id a new encrypted database gets (an existing one keeps its root's).
    pub fresh_db: DatabaseId,
}

impl VersionedMap {
    /// Nothing pinned yet.
    pub fn new(
        names: Names,
        compression: Option<Compression>,
        keys: Option<Arc<Keyring>>,
        fresh_db: DatabaseId,
    ) -> Self {
        VersionedMap {
            names,
            snapshot: None,
            block0: Bytes::new(),
            segments: SegmentCache::default(),
            compression,
            keys,
            fresh_db,
        }
    }

    /// How blocks are stored: compressed as the option says, else as the pinned version
    /// records; sealed with the database's keys and id (encrypted databases).
    pub fn codec(&self) -> BlockCodec {
        let recorded = self.snapshot.as_ref().map(|s| s.root.flags).unwrap_or(0);
        BlockCodec {
            compression: self.compression.unwrap_or(Compression::recorded(recorded)),
            keys: self.keys.clone(),
            db: self
                .snapshot
                .as_ref()
                .map_or(self.fresh_db, |s| s.root.db_id),
        }
    }

    /// Pins another version (its root's block 0 with it).
    pub fn pin(&mut self, snapshot: Option<Arc<Snapshot>>, block0: Bytes) {
        self.snapshot = snapshot;
        self.block0 = block0;
    }

    /// What an export of `snapshot` starts from: its map with every segment loaded (one pass,
    /// in parallel), its size and block size, and block 0 (in the root) cut to the file.
    pub async fn export_start(
        store: &dyn ObjectStore,
        names: Names,
        snapshot: Option<Arc<Snapshot>>,
        block_size: u64,
    ) -> Result<(VersionedMap, u64, u64, Option<Bytes>)> {
        let keys = names.keys().cloned();
        let mut map = VersionedMap::new(names, None, keys, DatabaseId::default());
        let Some(snap) = snapshot else {
            return Ok((map, 0, block_size, None));
        };
        let segments = snap.segments_up_to(snap.block_count());
        load_segments(store, &map.names, &snap.root, &segments, &mut map.segments).await?;
        let (size, block_size) = (snap.root.file_size, snap.root.block_size);
        let block0 = cut_block0(&snap.root.block0, size, block_size);
        map.pin(Some(snap), block0.clone());
        Ok((map, size, block_size, Some(block0)))
    }

    /// The pinned version (0 before the first).
    fn version(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.version())
    }
}

impl BlockMap for VersionedMap {
    fn locate(&self, i: u64) -> Result<Location> {
        let Some(s) = self.snapshot.as_ref() else {
            return Ok(Location::Zeros);
        };
        Ok(match s.locate(&self.names, i, &self.segments)? {
            BlockLocation::Inline => Location::Inline(self.block0.clone()),
            BlockLocation::Object(key, p) => Location::Object(key, Some(p)),
            BlockLocation::Zeros => Location::Zeros,
        })
    }

    fn prepare<'a>(
        &'a mut self,
        store: &'a dyn ObjectStore,
        blocks: &mut dyn Iterator<Item = u64>,
    ) -> Option<BoxFuture<'a, Result<()>>> {
        let snap = self.snapshot.clone()?;
        // Block 0 is in the root.
        let mut wanted: Vec<u64> = blocks
            .filter(|i| *i >= 1)
            .filter_map(|i| snap.segment_of(i).map(|(s, _)| s))
            .collect();
        wanted.dedup();
        if wanted.is_empty() {
            return None;
        }
        Some(Box::pin(async move {
            load_segments(store, &self.names, &snap.root, &wanted, &mut self.segments).await?;
            Ok(())
        }))
    }

    fn trim(&mut self) {
        self.segments.trim();
    }

    fn reader(&self) -> Arc<dyn BlockReader> {
        Arc::new(VersionedReader {
            codec: self.codec(),
            version: self.version(),
        })
    }

    fn in_place(&self) -> bool {
        false
    }

    fn cut(&self, _: u64, _: u64) -> Vec<String> {
        Vec::new()
    }

    fn early(&self) -> Option<EarlyNaming> {
        Some(EarlyNaming {
            names: self.names.clone(),
            codec: self.codec(),
            version: self.version() + 1,
        })
    }
}

/// Checks and decodes blocks with the codec; every object a version names must exist.
struct VersionedReader {
    codec: BlockCodec,
    version: u64,
}

impl BlockReader for VersionedReader {
    fn decode(
        &self,
        key: &str,
        i: u64,
        pointer: Option<&Pointer>,
        stored: Bytes,
        block_size: u64,
    ) -> Result<Bytes> {
        match pointer {
            Some(p) => self.codec.open_block(key, i, p, stored, block_size),
            None => Ok(stored),
        }
    }

    fn missing(&self, key: &str) -> Result<Bytes> {
        Err(version_gone(key, self.version))
    }
}

/// How blocks buffered for the next version are stored before its commit: under names unique
/// to the commit attempt, so a commit that loses or never happens leaves only garbage for GC.
pub struct EarlyNaming {
    pub names: Names,
    pub codec: BlockCodec,
    /// The version the attempt is for.
    pub version: u64,
}

impl EarlyNaming {
    /// Block `i`'s stored bytes, name and pointer for the attempt of `uploads`.
    pub fn seal(
        &self,
        uploads: &mut Uploads,
        i: u64,
        data: &Bytes,
    ) -> Result<(String, Bytes, Pointer)> {
        let (stored, pointer) = self.codec.seal_block(uploads, i, data)?;
        Ok((self.names.block(i, &pointer), stored, pointer))
    }

    /// The name of block `i` under pointer `p`.
    pub fn name(&self, i: u64, p: &Pointer) -> String {
        self.names.block(i, p)
    }
}
