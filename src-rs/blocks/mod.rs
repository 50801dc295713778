//! A file cut into fixed-size blocks, one object each: page<->block arithmetic, the dirty-block
//! buffer (writes are buffered and uploaded together, in parallel, at flush), and the block cache.
//!
//! Where block i lives is the layout's business (its `BlockMap`): `{prefix}/{i:010}` in the
//! `sqlite-s3vfs` layout (flushed in place by `flush`), or a version's block map in the
//! `versioned` layout (whose changes are taken with `changes` and published by the VFS).
//!
//! Bounded memory: the buffer holds at most the database's `memoryLimit` in memory (shared
//! with its journal). Past it, the oldest buffered blocks move out: to a temp file in the
//! `sqlite-s3vfs` layout (whose blocks are rewritten in place, so nothing may reach the store
//! before the commit), or to the store itself in the versioned layout, under keys unique to the
//! commit attempt (`upload_early`): harmless if the commit then loses, and the upload runs while
//! SQLite still works.
//!
//! Invariant kept in the store after every flush: the file has no holes — every block but the
//! last is exactly `block_size` bytes — so its size is the sum of its objects' sizes (the Python
//! library's definition) and blocks can be concatenated to serialize it.

pub mod budget;
pub mod cache;
pub mod dirty;
pub mod disk_cache;
pub mod readahead;
pub mod spill;

use crate::clock::Stamp;
use crate::error::Error;
use crate::error::{codes, Result};
use crate::layout::block_map::{BlockMap, Location};
use crate::layout::compat::{BlockKeys, CompatMap};
use crate::layout::versioned::codec::{BlockCodec, Compression};
use crate::layout::versioned::commit::MAX_BASE_AGE;
use crate::layout::versioned::format::{Pointer, Uploads};
use crate::layout::versioned::map::{EarlyNaming, VersionedMap};
use crate::layout::versioned::{new_attempt_id, SegmentCache, Snapshot};
use crate::store::{delete_keys, DynStore, GetOptions, GetOutcome, PutMode, Stats};
use budget::MemoryBudget;
use bytes::Bytes;
use cache::BlockCache;
use dirty::{Dirty, DirtyBlocks};
use disk_cache::DiskCache;
use futures::{StreamExt, TryStreamExt};
use readahead::ReadAhead;
use spill::TempFile;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The versioned layout's commit attempt that buffered blocks were uploaded early for: the
/// publish that follows names its other objects and its root with the same attempt.
pub struct EarlyAttempt {
    pub uploads: Uploads,
    /// Taken before the newest upload of the attempt started: GC spares an attempt's objects for
    /// its horizon after the newest one, and a commit relies on them for `MAX_BASE_AGE` only.
    pub last_upload: Stamp,
}

impl EarlyAttempt {
    fn new(version: u64) -> Result<Self> {
        Ok(EarlyAttempt {
            uploads: Uploads::new(version, new_attempt_id()?, 0),
            last_upload: Stamp::now(),
        })
    }
}

/// A versioned file's buffered changes, as a publish takes them.
pub struct Changes {
    /// Blocks held in memory: their full content.
    pub blocks: Vec<(u64, Bytes)>,
    /// Blocks uploaded early for the buffer's `EarlyAttempt`.
    pub uploaded: Vec<(u64, Pointer)>,
    pub size: u64,
}

/// The write buffer as it was (`SQLITE_FCNTL_BEGIN_ATOMIC_WRITE`), to go back to.
pub type SavePoint = (BTreeMap<u64, Dirty>, u64);

/// A block `flush` stored: its content (when it was in memory, for the cache) and ETag.
type Flushed = (u64, Option<Bytes>, Option<String>);

/// A buffered block on its way to the store (`flush`).
enum Pending {
    Ready(Bytes),
    /// In the temp file: this many bytes, padded or cut to the block's length.
    Spilled(usize),
}

pub struct BlockFile<M: BlockMap> {
    store: DynStore,
    stats: Arc<Stats>,
    /// Where each block is, as the layout names it.
    map: M,
    block_size: u64,
    /// The logical size, buffered writes included.
    size: u64,
    /// The size of what the store holds (as of the last load or flush).
    stored_size: u64,
    dirty: DirtyBlocks,
    /// Where buffered blocks go past the memory budget (`sqlite-s3vfs` layout), at
    /// `index * block_size`.
    spill: Arc<TempFile>,
    /// The attempt blocks were uploaded early for (versioned layout), until publish or discard.
    early: Option<EarlyAttempt>,
    cache: BlockCache,
    /// Off while another process's commit is in flight: what we read may be half old, half new.
    cache_enabled: bool,
    concurrency: usize,
    /// Upload this block after all others (block 0 of a database: readers that see its new
    /// version then see the whole commit).
    upload_last: Option<u64>,
    /// The ETag of the `upload_last` block as we last wrote or read it.
    last_block_etag: Option<String>,
    read_ahead: ReadAhead,
    /// The read-ahead window the options asked for (capped by the cache for each block size).
    read_ahead_wanted: u64,
    /// GETs under way (prefetched or wanted now), by block, with the key they read.
    inflight: HashMap<u64, (String, JoinHandle<Result<Fetched>>)>,
    /// Bounds this file's GETs in flight to `concurrency`.
    permits: Arc<Semaphore>,
    /// Blocks on local disk (versioned layout: immutable objects with a known CRC).
    disk: Option<Arc<DiskCache>>,
}

/// A block's object as read: content and ETag.
type Fetched = (Bytes, Option<String>);

pub struct BlockFileOptions {
    pub block_size: u64,
    pub cache_bytes: usize,
    pub concurrency: usize,
    /// At most this many blocks prefetched ahead of a sequential reader (0: no read-ahead).
    pub read_ahead: u64,
    pub upload_last: Option<u64>,
    pub disk: Option<Arc<DiskCache>>,
    /// The database's memory budget for buffered writes.
    pub budget: Arc<MemoryBudget>,
}

impl<M: BlockMap> BlockFile<M> {
    pub fn new(
        store: DynStore,
        stats: Arc<Stats>,
        map: M,
        stored_size: u64,
        opts: BlockFileOptions,
    ) -> Self {
        BlockFile {
            store,
            stats,
            map,
            block_size: opts.block_size,
            size: stored_size,
            stored_size,
            dirty: DirtyBlocks::new(opts.budget),
            spill: Arc::new(TempFile::default()),
            early: None,
            cache: BlockCache::new(opts.cache_bytes),
            cache_enabled: true,
            concurrency: opts.concurrency.max(1),
            upload_last: opts.upload_last,
            last_block_etag: None,
            read_ahead: ReadAhead::new(read_ahead_cap(
                opts.read_ahead,
                opts.cache_bytes,
                opts.block_size,
            )),
            read_ahead_wanted: opts.read_ahead,
            inflight: HashMap::new(),
            permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            disk: opts.disk,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || self.size != self.stored_size
    }

    pub fn last_block_etag(&self) -> Option<&str> {
        self.last_block_etag.as_deref()
    }

    /// The buffered changes of a versioned file: the full content of every block held in
    /// memory, the pointers of those uploaded early, and the new size. The buffer stays until
    /// `pin` (after a publish) or `discard`.
    pub fn changes(&self) -> Result<Changes> {
        let size = self.size;
        let mut changes = Changes {
            blocks: Vec::new(),
            uploaded: Vec::new(),
            size,
        };
        for (i, d) in self.dirty.iter() {
            if i >= self.block_count(size) {
                continue;
            }
            let len = self.block_len(i, size);
            match d {
                Dirty::Mem { data, .. } => {
                    let mut v = data.clone();
                    v.resize(len, 0);
                    changes.blocks.push((i, Bytes::from(v)));
                }
                // Only full blocks are uploaded early, a truncate that cuts one brings it back
                // into memory first, and `renew_stale_attempt` moves any of another attempt.
                Dirty::Uploaded {
                    pointer, len: held, ..
                } if *held == len
                    && self
                        .early
                        .as_ref()
                        .is_some_and(|e| e.uploads.attempt == pointer.attempt) =>
                {
                    changes.uploaded.push((i, *pointer))
                }
                other => {
                    return Err(Error::internal(format!(
                        "block {i} is buffered as {other:?}, which a version cannot reference"
                    )))
                }
            }
        }
        Ok(changes)
    }

    /// The buffered content of block `i`, if it was written since the last flush or pin and is
    /// held in memory.
    pub fn dirty_block(&self, i: u64) -> Option<&[u8]> {
        self.dirty.mem(i)
    }

    /// Caches blocks just uploaded under their new keys (a commit's own blocks are read again).
    pub fn cache_uploaded(&mut self, blocks: Vec<(String, Bytes)>) {
        for (key, data) in blocks {
            self.cache.insert(key, data);
        }
    }

    /// A copy of the write buffer, to go back to (`SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE` drops only
    /// the writes made since `BEGIN_ATOMIC_WRITE`).
    pub fn save_point(&self) -> SavePoint {
        (self.dirty.save(), self.size)
    }

    pub fn restore(&mut self, point: SavePoint) {
        self.dirty.restore(point.0);
        self.size = point.1;
    }

    pub fn set_cache_enabled(&mut self, enabled: bool) {
        self.cache_enabled = enabled;
        if !enabled {
            self.cache.clear();
            self.forget_inflight();
        }
    }

    /// Cancels every GET under way: what they read may be older than the file now.
    fn forget_inflight(&mut self) {
        self.cancel_inflight(|_| true);
        self.read_ahead.reset();
    }

    /// Cancels the GETs under way of the blocks `doomed` names.
    fn cancel_inflight(&mut self, doomed: impl Fn(u64) -> bool) {
        self.inflight.retain(|i, (_, handle)| {
            if doomed(*i) {
                handle.abort();
            }
            !doomed(*i)
        });
    }

    /// Drops buffered writes (a rollback of what was never flushed).
    pub fn discard(&mut self) {
        self.clear_buffer();
        self.size = self.stored_size;
    }

    /// Empties the write buffer, wherever its blocks are (what was uploaded early stays in the
    /// store, unreferenced, for GC).
    fn clear_buffer(&mut self) {
        if self.dirty.any_parked() {
            self.spill.clear();
        }
        self.dirty.clear();
        self.early = None;
    }

    fn block_count(&self, size: u64) -> u64 {
        size.div_ceil(self.block_size)
    }

    /// Length of block `i` in a file of `size` bytes.
    fn block_len(&self, i: u64, size: u64) -> usize {
        block_len(i, size, self.block_size)
    }

    /// Between operations: bounds what naming blocks keeps (never during one, see
    /// `SegmentCache`).
    fn trim_names(&mut self) {
        self.map.trim();
    }

    /// Loads what naming blocks `first..=last` needs (the versioned layout's map segments).
    fn prepare_names(&mut self, first: u64, last: u64) -> Result<()> {
        // Buffered blocks need no name.
        let dirty = &self.dirty;
        let mut blocks = (first..=last).filter(|i| !dirty.contains(*i));
        if let Some(load) = self.map.prepare(&*self.store, &mut blocks) {
            crate::runtime::block_on(load)?;
        }
        Ok(())
    }

    /// Where block `i`'s stored content is (ignoring the write buffer). An entry whose map
    /// segment is not loaded is an error, never zeros (`prepare_names` runs before lookups).
    fn source(&self, i: u64) -> Result<Location> {
        if let Some(Dirty::Uploaded { key, pointer, .. }) = self.dirty.get(i) {
            return Ok(Location::Object(key.clone(), Some(*pointer)));
        }
        self.map.locate(i)
    }

    /// Whether block `i`'s stored content lies past what the store holds (it reads as zeros).
    fn beyond_stored(&self, i: u64) -> bool {
        i * self.block_size >= self.stored_size.min(self.size)
    }

    /// Whether block `i` has content that only the store holds (for read-ahead: a block whose
    /// name cannot be resolved is simply not prefetched).
    fn needs_fetch(&self, i: u64) -> bool {
        if self.dirty.contains(i) || self.beyond_stored(i) {
            return false;
        }
        match self.source(i) {
            Ok(Location::Object(key, _)) => !(self.cache_enabled && self.cache.contains(&key)),
            _ => false,
        }
    }

    /// Starts a GET of block `i` in the background unless one is under way for its current key.
    fn start_fetch(&mut self, i: u64) -> Result<()> {
        let Location::Object(key, pointer) = self.source(i)? else {
            return Ok(());
        };
        if let Some((k, _)) = self.inflight.get(&i) {
            if *k == key {
                return Ok(());
            }
            if let Some((_, stale)) = self.inflight.remove(&i) {
                stale.abort();
            }
        }
        let store = self.store.clone();
        let permits = self.permits.clone();
        let task_key = key.clone();
        let uploaded_early = matches!(self.dirty.get(i), Some(Dirty::Uploaded { .. }));
        // Only objects with a checksum to verify are kept on disk, as stored (verified on every
        // hit, then decoded); the memory cache gets them decoded.
        let disk = self.disk.clone().filter(|_| pointer.is_some());
        let block_size = self.block_size;
        let reader = self.map.reader();
        let handle = crate::runtime::spawn(async move {
            let key = task_key;
            let location = store.cache_scope();
            if let (Some(disk), Some(p)) = (&disk, pointer) {
                if let Some(data) = disk.get(&location, &key) {
                    // A damaged or foreign file is only a miss.
                    if let Ok(block) =
                        reader.decode(&key, i, Some(&p), Bytes::from(data), block_size)
                    {
                        return Ok((block, None));
                    }
                }
            }
            let _permit = permits.acquire_owned().await;
            match store.get(&key, GetOptions::default()).await? {
                GetOutcome::Found(obj) => {
                    // Checked (its CRC, or its seal) and decoded before the disk keeps it.
                    let block =
                        reader.decode(&key, i, pointer.as_ref(), obj.body.clone(), block_size)?;
                    if let Some(disk) = &disk {
                        disk.put(&location, &key, &obj.body);
                    }
                    Ok((block, obj.etag))
                }
                _ if uploaded_early => Err(relieve::transaction_expired(&key)),
                // Zeros, or an error (a block a version references must exist).
                _ => reader.missing(&key).map(|b| (b, None)),
            }
        });
        self.inflight.insert(i, (key, handle));
        Ok(())
    }

    /// Keeps a block just read: its ETag when it is the `upload_last` one, the cache.
    fn accept(&mut self, i: u64, key: String, data: &Bytes, etag: Option<String>) {
        if Some(i) == self.upload_last {
            self.last_block_etag = etag;
        }
        if self.cache_enabled {
            self.cache.insert(key, data.clone());
        }
    }

    /// Moves finished prefetches into the cache (a failed one is simply read again when wanted).
    fn harvest(&mut self) {
        let done: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, (_, h))| h.is_finished())
            .map(|(i, _)| *i)
            .collect();
        for i in done {
            let Some((key, handle)) = self.inflight.remove(&i) else {
                continue;
            };
            if let Ok(Ok((data, etag))) = crate::runtime::block_on(handle) {
                self.accept(i, key, &data, etag);
            }
        }
    }

    /// Starts GETs of the blocks of `first..=last` that only the store holds (read-ahead).
    fn prefetch(&mut self, first: u64, last: u64) -> Result<()> {
        let last = last.min(
            self.block_count(self.stored_size.min(self.size))
                .saturating_sub(1),
        );
        if first > last {
            return Ok(());
        }
        self.prepare_names(first, last)?;
        for i in first..=last {
            if self.needs_fetch(i) && !self.inflight.contains_key(&i) {
                self.stats
                    .prefetched
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.start_fetch(i)?;
            }
        }
        Ok(())
    }

    /// Fetches the given blocks in parallel (joining GETs already under way); returns them (and
    /// caches them when allowed).
    fn fetch(&mut self, blocks: Vec<u64>) -> Result<HashMap<u64, Bytes>> {
        for &i in &blocks {
            self.start_fetch(i)?;
        }
        let waits: Vec<(u64, String, JoinHandle<Result<Fetched>>)> = blocks
            .iter()
            .filter_map(|i| self.inflight.remove(i).map(|(k, h)| (*i, k, h)))
            .collect();
        if waits.is_empty() {
            return Ok(HashMap::new());
        }
        let results = crate::runtime::block_on(futures::future::join_all(waits.into_iter().map(
            |(i, key, h)| async move {
                let r = h
                    .await
                    .map_err(|e| Error::internal(format!("block read task failed: {e}")));
                (i, key, r)
            },
        )));
        let mut out = HashMap::with_capacity(results.len());
        let mut first_error = None;
        for (i, key, r) in results {
            match r.and_then(|r| r) {
                Ok((data, etag)) => {
                    self.accept(i, key, &data, etag);
                    out.insert(i, data);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The stored content of each of `blocks` that is not in the write buffer, decided in one
    /// pass: cached blocks are taken out of the cache *before* any fetch can evict them (a
    /// request spanning more blocks than the cache holds would otherwise lose the ones it found
    /// cached). Blocks that read as zeros map to empty bytes. Returns the blocks found locally
    /// and the ones to fetch.
    fn classify(
        &mut self,
        blocks: impl Iterator<Item = u64>,
    ) -> Result<(HashMap<u64, Bytes>, Vec<u64>)> {
        let mut have = HashMap::new();
        let mut missing = Vec::new();
        for i in blocks {
            if have.contains_key(&i) || missing.contains(&i) {
                continue;
            }
            match self.dirty.get(i) {
                // `local_block` takes it from the buffer.
                Some(Dirty::Mem { .. }) => continue,
                Some(Dirty::Spilled { len }) => {
                    let data = self.spill.read_at(i * self.block_size, *len)?;
                    have.insert(i, Bytes::from(data));
                    continue;
                }
                // An object of ours, found by `source`.
                Some(Dirty::Uploaded { .. }) | None => {}
            }
            if self.dirty.get(i).is_none() && self.beyond_stored(i) {
                have.insert(i, Bytes::new());
                continue;
            }
            match self.source(i)? {
                Location::Inline(b) => {
                    have.insert(i, b);
                }
                Location::Zeros => {
                    have.insert(i, Bytes::new());
                }
                Location::Object(key, _) => {
                    match self.cache.get(&key).filter(|_| self.cache_enabled) {
                        Some(b) => {
                            have.insert(i, b);
                        }
                        None => missing.push(i),
                    }
                }
            }
        }
        Ok((have, missing))
    }

    /// The content of block `i`: the write buffer, else what `classify`/`fetch` gathered for
    /// this request. A block in neither is a bug, reported as an error (never zero-filled).
    fn local_block(&self, i: u64, gathered: &HashMap<u64, Bytes>) -> Result<Bytes> {
        if let Some(d) = self.dirty.mem(i) {
            return Ok(Bytes::copy_from_slice(d));
        }
        gathered
            .get(&i)
            .cloned()
            .ok_or_else(|| Error::internal(format!("block {i} was not gathered before use")))
    }

    /// Reads into `buf` from `offset`; returns how many bytes the file had (the rest of `buf` is
    /// left for the caller to zero-fill).
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let end = (offset + buf.len() as u64).min(self.size);
        let first = offset / self.block_size;
        let last = (end - 1) / self.block_size;
        self.harvest();
        self.trim_names();
        self.prepare_names(first, last)?;
        let (mut gathered, missing) = self.classify(first..=last)?;
        for i in first..=last {
            if !self.dirty.contains(i) {
                self.stats.count_cache(!missing.contains(&i));
            }
        }
        // Ahead first, so its GETs overlap the wait for this read's own. Read-ahead is only a
        // hint: a block it cannot name now is read (and its error reported) when wanted.
        if let Some((a, b)) = self.read_ahead.observe(first, last) {
            let _ = self.prefetch(a, b);
        }
        gathered.extend(self.fetch(missing)?);
        let mut pos = offset;
        while pos < end {
            let i = pos / self.block_size;
            let within = (pos - i * self.block_size) as usize;
            let take = ((self.block_size - within as u64).min(end - pos)) as usize;
            let dst = &mut buf[(pos - offset) as usize..(pos - offset) as usize + take];
            let valid = self.block_len(i, self.stored_size.min(self.size));
            let data = self.local_block(i, &gathered)?;
            // A buffered block (in memory, spilled or uploaded early) is exactly its content.
            let valid = if self.dirty.contains(i) {
                data.len()
            } else {
                valid
            };
            copy_padded(dst, &data, within, valid);
            pos += take as u64;
        }
        Ok((end - offset) as usize)
    }

    /// Writes `data` at `offset`, zero-filling any gap past the end of the file (the file never
    /// has holes).
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let start = offset.min(self.size);
        let end = offset + data.len() as u64;
        if end == start {
            return Ok(());
        }
        let old_size = self.size;
        let first = start / self.block_size;
        let last = (end - 1) / self.block_size;
        // A GET under way would bring back what this write replaces.
        self.cancel_inflight(|i| (first..=last).contains(&i));
        self.trim_names();
        self.prepare_names(first, first)?;
        self.prepare_names(last, last)?;
        // Whether the write replaces every byte block `i` had (or it had none): only the edge
        // blocks can fail this, and only they need their old content.
        let bs = self.block_size;
        let covered = move |i: u64| {
            let block_start = i * bs;
            let existing_end = block_start + (old_size.saturating_sub(block_start)).min(bs);
            existing_end == block_start || (offset <= block_start && end >= existing_end)
        };
        let edges: Vec<u64> = [first, last].into_iter().filter(|i| !covered(*i)).collect();
        let (mut gathered, missing) = self.classify(edges.into_iter())?;
        gathered.extend(self.fetch(missing)?);
        let new_size = end.max(old_size);
        for i in first..=last {
            let block_start = i * self.block_size;
            let mut buf = if let Some(d) = self.dirty.take_mem(i) {
                d
            } else if covered(i) {
                // Every byte it held is overwritten below.
                vec![0; self.block_len(i, old_size)]
            } else if self.dirty.contains(i) {
                // Spilled or uploaded early: its content, as `classify` gathered it.
                self.local_block(i, &gathered)?.to_vec()
            } else {
                let keep = self.block_len(i, old_size.min(self.stored_size));
                let b = self.local_block(i, &gathered)?;
                let mut v = b[..keep.min(b.len())].to_vec();
                v.resize(keep, 0);
                v
            };
            // Content past the old size is zeros, whatever a stale buffer or object held.
            buf.truncate(self.block_len(i, old_size));
            buf.resize(self.block_len(i, new_size), 0);
            let lo = offset.max(block_start);
            let hi = end.min(block_start + self.block_size);
            if hi > lo {
                let src = &data[(lo - offset) as usize..(hi - offset) as usize];
                let at = (lo - block_start) as usize;
                buf[at..at + src.len()].copy_from_slice(src);
            }
            self.dirty.put_mem(i, buf);
        }
        self.size = new_size;
        self.relieve(last)
    }

    pub fn truncate(&mut self, new_size: u64) -> Result<()> {
        if new_size > self.size {
            let zeros = vec![0u8; (new_size - self.size) as usize];
            return self.write(self.size, &zeros);
        }
        let count = self.block_count(new_size);
        self.dirty.retain(|i| i < count);
        self.cancel_inflight(|i| i >= count);
        if let Some(last) = count.checked_sub(1) {
            let len = self.block_len(last, new_size);
            match self.dirty.get(last) {
                Some(Dirty::Mem { .. }) => self.dirty.truncate_mem(last, len),
                // Spilled or uploaded longer than it now is: back into memory, cut.
                Some(d) if d.byte_len() > len => {
                    let (mut gathered, missing) = self.classify(std::iter::once(last))?;
                    gathered.extend(self.fetch(missing)?);
                    let mut v = self.local_block(last, &gathered)?.to_vec();
                    v.truncate(len);
                    self.dirty.put_mem(last, v);
                }
                _ => {}
            }
        }
        // Rewritten in place, the cut blocks' keys may be written again with other content.
        let old_count = self.block_count(self.size.max(self.stored_size));
        for key in self.map.cut(count, old_count) {
            self.cache.remove(&key);
        }
        self.size = new_size;
        Ok(())
    }
}

/// The `sqlite-s3vfs` layout's files: flushed in place, block by block.
impl BlockFile<CompatMap> {
    /// The file's block names.
    pub fn keys(&self) -> &BlockKeys {
        &self.map.keys
    }

    /// Another process changed the file: forget what we cached and take its new size.
    /// `block0` is the freshly read first block, kept in the cache.
    pub fn reset(&mut self, stored_size: u64, block0: Option<(Bytes, Option<String>)>) {
        self.cache.clear();
        self.forget_inflight();
        self.clear_buffer();
        self.size = stored_size;
        self.stored_size = stored_size;
        self.last_block_etag = None;
        if let Some((data, etag)) = block0 {
            self.last_block_etag = etag;
            if self.cache_enabled {
                let key = self.keys().key(0);
                self.cache.insert(key, data);
            }
        }
    }

    /// Uploads the buffered writes: changed blocks in parallel, then deletes of blocks past the
    /// new end, then the `upload_last` block. Leaves the store without holes.
    pub fn flush(&mut self) -> Result<()> {
        if !self.is_dirty() {
            return Ok(());
        }
        let new_count = self.block_count(self.size);
        let old_count = self.block_count(self.stored_size);
        // A shrink that cuts the new last block: rewrite it shorter.
        if self.size < self.stored_size && !self.size.is_multiple_of(self.block_size) {
            let last = new_count - 1;
            if !self.dirty.contains(last) {
                let (mut gathered, missing) = self.classify(std::iter::once(last))?;
                gathered.extend(self.fetch(missing)?);
                let len = self.block_len(last, self.size);
                let b = self.local_block(last, &gathered)?;
                let mut v = b[..len.min(b.len())].to_vec();
                v.resize(len, 0);
                self.dirty.put_mem(last, v);
            }
        }
        let size = self.size;
        // The buffer stays until the upload succeeds: a failed flush must leave every byte
        // readable (SQLite rolls back from the journal it just failed to store).
        let mut uploads: Vec<(u64, Pending)> = Vec::new();
        for (i, d) in self.dirty.iter() {
            uploads.push((
                i,
                match d {
                    Dirty::Mem { data, .. } => {
                        let mut v = data.clone();
                        v.resize(self.block_len(i, size), 0);
                        Pending::Ready(Bytes::from(v))
                    }
                    Dirty::Spilled { len } => Pending::Spilled(*len),
                    Dirty::Uploaded { .. } => {
                        return Err(Error::internal(format!(
                            "block {i} of a file rewritten in place was uploaded early"
                        )))
                    }
                },
            ));
        }
        let deferred = self
            .upload_last
            .and_then(|last| uploads.iter().position(|(i, _)| *i == last))
            .map(|pos| uploads.remove(pos));
        let store = self.store.clone();
        let keys = self.keys().clone();
        let concurrency = self.concurrency;
        let block_size = self.block_size;
        let spill = self.spill.clone();
        let put_all = |batch: Vec<(u64, Pending)>| {
            let store = store.clone();
            let keys = keys.clone();
            let spill = spill.clone();
            async move {
                futures::stream::iter(batch.into_iter().map(|(i, pending)| {
                    let store = store.clone();
                    let key = keys.key(i);
                    let spill = spill.clone();
                    async move {
                        // Read from the temp file only when its turn comes: at most
                        // `concurrency` blocks are in memory at once.
                        let (data, in_memory) = match pending {
                            Pending::Ready(b) => (b, true),
                            Pending::Spilled(len) => {
                                let mut v = spill.read_at(i * block_size, len)?;
                                v.resize(block_len(i, size, block_size), 0);
                                (Bytes::from(v), false)
                            }
                        };
                        let etag = store.put(&key, data.clone(), PutMode::Rewrite).await?;
                        // Kept for the cache only when it was in memory anyway: the spilled
                        // ones would add up to the whole transaction.
                        Ok::<_, crate::error::Error>((i, in_memory.then_some(data), etag))
                    }
                }))
                .buffer_unordered(concurrency)
                .try_collect::<Vec<_>>()
                .await
            }
        };
        let doomed: Vec<String> = (new_count..old_count).map(|i| keys.key(i)).collect();
        let result: Result<Vec<Flushed>> = crate::runtime::block_on(async {
            let mut done = put_all(uploads).await?;
            delete_keys(store.clone(), doomed, concurrency).await?;
            if let Some(last) = deferred {
                done.extend(put_all(vec![last]).await?);
            }
            Ok(done)
        });
        match result {
            Ok(done) => {
                self.clear_buffer();
                for (i, data, etag) in done {
                    if Some(i) == self.upload_last {
                        self.last_block_etag = etag;
                    }
                    match data {
                        Some(data) if self.cache_enabled => self.cache.insert(keys.key(i), data),
                        // Not cached: whatever the cache held under this key is stale now.
                        _ => self.cache.remove(&keys.key(i)),
                    }
                }
                for i in new_count..old_count {
                    self.cache.remove(&keys.key(i));
                }
                self.stored_size = size;
                Ok(())
            }
            Err(e) => {
                // What reached the store is unknown: re-read everything from it next time (the
                // buffer stays, and is uploaded again by the next flush).
                self.cache.clear();
                self.forget_inflight();
                self.last_block_etag = None;
                Err(e)
            }
        }
    }
}

/// The versioned layout's files: a pinned version, changes published by the VFS.
impl BlockFile<VersionedMap> {
    /// Pins a version of a versioned file: its size and map; buffered writes are dropped. The
    /// cache stays (its keys are immutable objects).
    pub fn pin(&mut self, snapshot: Option<Arc<Snapshot>>, block0: Bytes) {
        let size = snapshot.as_ref().map(|s| s.root.file_size).unwrap_or(0);
        // An existing database keeps the block size it was written with, whatever the options say.
        if let Some(s) = &snapshot {
            if s.root.block_size != self.block_size {
                self.read_ahead = ReadAhead::new(read_ahead_cap(
                    self.read_ahead_wanted,
                    self.cache.capacity(),
                    s.root.block_size,
                ));
                self.block_size = s.root.block_size;
                self.forget_inflight();
            }
        }
        self.map.pin(snapshot, block0);
        self.clear_buffer();
        self.size = size;
        self.stored_size = size;
    }

    /// For a commit: the codec, and whether the next version's map carries codecs (compression
    /// or sealing now, or a base or an early upload that already does). Looks at every buffered
    /// block, so it is not for the read path.
    pub fn commit_codec(&self) -> (BlockCodec, bool) {
        let codec = self.map.codec();
        let early_coded = self
            .dirty
            .iter()
            .any(|(_, d)| matches!(d, Dirty::Uploaded { pointer, .. } if pointer.codec != 0));
        let codecs = codec.compression != Compression::None
            || codec.keys.is_some()
            || self
                .map
                .snapshot
                .as_ref()
                .is_some_and(|s| s.root.has_codecs())
            || early_coded;
        (codec, codecs)
    }

    /// What a publish needs mutably: the map segments read so far and the early attempt.
    pub fn commit_parts(&mut self) -> (&mut SegmentCache, Option<&mut EarlyAttempt>) {
        (&mut self.map.segments, self.early.as_mut())
    }
}

impl<M: BlockMap> Drop for BlockFile<M> {
    /// A closed file's read-ahead GETs are cancelled: nothing of a closed database keeps running
    /// (or writing to its disk cache) after it.
    fn drop(&mut self) {
        self.forget_inflight();
    }
}

/// Length of block `i` in a file of `size` bytes cut into blocks of `block_size`.
fn block_len(i: u64, size: u64, block_size: u64) -> usize {
    let start = i * block_size;
    if start >= size {
        0
    } else {
        (size - start).min(block_size) as usize
    }
}

/// Read-ahead holds its blocks in the cache until they are read: never more than half of it
/// (blocks of an existing database may be far larger than the options expected, and a window of
/// 32 blocks of 64 MiB would be 2 GiB in flight, thrown away for want of room).
fn read_ahead_cap(blocks: u64, cache_bytes: usize, block_size: u64) -> u64 {
    blocks.min(cache_bytes as u64 / block_size.max(1) / 2)
}

/// Copies `src[within..]` into `dst`, where only the first `valid` bytes of `src` are file
/// content; the rest reads as zeros.
fn copy_padded(dst: &mut [u8], src: &[u8], within: usize, valid: usize) {
    let avail = valid.min(src.len()).saturating_sub(within).min(dst.len());
    if avail > 0 {
        dst[..avail].copy_from_slice(&src[within..within + avail]);
    }
    dst[avail..].fill(0);
}

mod relieve;
#[cfg(test)]
mod tests;
