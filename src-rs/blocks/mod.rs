//! A file cut into fixed-size blocks, one object each: page<->block arithmetic, the dirty-block
//! buffer (writes are buffered and uploaded together, in parallel, at flush), and the block cache.
//!
//! Invariant kept in the store after every flush: the file has no holes — every block but the
//! last is exactly `block_size` bytes — so its size is the sum of its objects' sizes (the Python
//! library's definition) and blocks can be concatenated to serialize it.

pub mod cache;

use crate::error::Result;
use crate::layout::compat::BlockKeys;
use crate::store::{delete_keys, DynStore, GetOptions, GetOutcome, PutMode, Stats};
use bytes::Bytes;
use cache::BlockCache;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct BlockFile {
    store: DynStore,
    stats: Arc<Stats>,
    keys: BlockKeys,
    block_size: u64,
    /// The logical size, buffered writes included.
    size: u64,
    /// The size of what the store holds (as of the last load or flush).
    stored_size: u64,
    dirty: BTreeMap<u64, Vec<u8>>,
    cache: BlockCache,
    /// Off while another process's commit is in flight: what we read may be half old, half new.
    cache_enabled: bool,
    concurrency: usize,
    /// Upload this block after all others (block 0 of a database: readers that see its new
    /// version then see the whole commit).
    upload_last: Option<u64>,
    /// The ETag of the `upload_last` block as we last wrote or read it.
    last_block_etag: Option<String>,
}

pub struct BlockFileOptions {
    pub block_size: u64,
    pub cache_bytes: usize,
    pub concurrency: usize,
    pub upload_last: Option<u64>,
}

impl BlockFile {
    pub fn new(
        store: DynStore,
        stats: Arc<Stats>,
        keys: BlockKeys,
        stored_size: u64,
        opts: BlockFileOptions,
    ) -> Self {
        BlockFile {
            store,
            stats,
            keys,
            block_size: opts.block_size,
            size: stored_size,
            stored_size,
            dirty: BTreeMap::new(),
            cache: BlockCache::new(opts.cache_bytes),
            cache_enabled: true,
            concurrency: opts.concurrency.max(1),
            upload_last: opts.upload_last,
            last_block_etag: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn keys(&self) -> &BlockKeys {
        &self.keys
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty() || self.size != self.stored_size
    }

    pub fn last_block_etag(&self) -> Option<&str> {
        self.last_block_etag.as_deref()
    }

    /// Another process changed the file: forget what we cached and take its new size.
    /// `block0` is the freshly read first block, kept in the cache.
    pub fn reset(&mut self, stored_size: u64, block0: Option<(Bytes, Option<String>)>) {
        self.cache.clear();
        self.dirty.clear();
        self.size = stored_size;
        self.stored_size = stored_size;
        self.last_block_etag = None;
        if let Some((data, etag)) = block0 {
            self.last_block_etag = etag;
            if self.cache_enabled {
                self.cache.insert(0, data);
            }
        }
    }

    pub fn set_cache_enabled(&mut self, enabled: bool) {
        self.cache_enabled = enabled;
        if !enabled {
            self.cache.clear();
        }
    }

    /// Drops buffered writes (a rollback of what was never flushed).
    pub fn discard(&mut self) {
        self.dirty.clear();
        self.size = self.stored_size;
    }

    fn block_count(&self, size: u64) -> u64 {
        size.div_ceil(self.block_size)
    }

    /// Length of block `i` in a file of `size` bytes.
    fn block_len(&self, i: u64, size: u64) -> usize {
        let start = i * self.block_size;
        if start >= size {
            0
        } else {
            (size - start).min(self.block_size) as usize
        }
    }

    /// Whether block `i` has content that only the store holds.
    fn needs_fetch(&self, i: u64) -> bool {
        let local = self.dirty.contains_key(&i) || (self.cache_enabled && self.cache.contains(i));
        !local && i * self.block_size < self.stored_size.min(self.size)
    }

    /// Fetches the given blocks in parallel; returns them (and caches them when allowed).
    fn fetch(&mut self, blocks: Vec<u64>) -> Result<HashMap<u64, Bytes>> {
        if blocks.is_empty() {
            return Ok(HashMap::new());
        }
        let store = self.store.clone();
        let keys = self.keys.clone();
        let fetched: Vec<(u64, Bytes, Option<String>)> = crate::runtime::block_on(
            futures::stream::iter(blocks.into_iter().map(|i| {
                let store = store.clone();
                let key = keys.key(i);
                async move {
                    match store.get(&key, GetOptions::default()).await? {
                        GetOutcome::Found(obj) => {
                            Ok::<_, crate::error::Error>((i, obj.body, obj.etag))
                        }
                        // A missing block reads as empty (zeros), like the Python library.
                        _ => Ok((i, Bytes::new(), None)),
                    }
                }
            }))
            .buffer_unordered(self.concurrency)
            .try_collect(),
        )?;
        let mut out = HashMap::with_capacity(fetched.len());
        for (i, data, etag) in fetched {
            if Some(i) == self.upload_last {
                self.last_block_etag = etag;
            }
            if self.cache_enabled {
                self.cache.insert(i, data.clone());
            }
            out.insert(i, data);
        }
        Ok(out)
    }

    /// The content of block `i` as far as it is known locally (dirty buffer or cache).
    fn local_block(&mut self, i: u64, fetched: &HashMap<u64, Bytes>) -> Option<Bytes> {
        if let Some(d) = self.dirty.get(&i) {
            return Some(Bytes::copy_from_slice(d));
        }
        if let Some(f) = fetched.get(&i) {
            return Some(f.clone());
        }
        if self.cache_enabled {
            return self.cache.get(i);
        }
        None
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
        let mut missing = Vec::new();
        for i in first..=last {
            let needed = self.needs_fetch(i);
            if !self.dirty.contains_key(&i) {
                self.stats.count_cache(!needed);
            }
            if needed {
                missing.push(i);
            }
        }
        let fetched = self.fetch(missing)?;
        let mut pos = offset;
        while pos < end {
            let i = pos / self.block_size;
            let within = (pos - i * self.block_size) as usize;
            let take = ((self.block_size - within as u64).min(end - pos)) as usize;
            let dst = &mut buf[(pos - offset) as usize..(pos - offset) as usize + take];
            let valid = self.block_len(i, self.stored_size.min(self.size));
            match self.local_block(i, &fetched) {
                Some(data) => copy_padded(
                    dst,
                    &data,
                    within,
                    if self.dirty.contains_key(&i) {
                        data.len()
                    } else {
                        valid
                    },
                ),
                None => dst.fill(0),
            }
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
        // Only the edge blocks can be partly overwritten and need their old content.
        let mut missing = Vec::new();
        for i in [first, last] {
            if missing.contains(&i) || !self.needs_fetch(i) {
                continue;
            }
            let block_start = i * self.block_size;
            let existing_end = block_start + self.block_len(i, old_size) as u64;
            let covered = offset <= block_start && end >= existing_end;
            if !covered {
                missing.push(i);
            }
        }
        let fetched = self.fetch(missing)?;
        let new_size = end.max(old_size);
        for i in first..=last {
            let block_start = i * self.block_size;
            let mut buf = match self.dirty.remove(&i) {
                Some(d) => d,
                None => {
                    let keep = self.block_len(i, old_size.min(self.stored_size));
                    match self.local_block(i, &fetched) {
                        Some(b) => {
                            let mut v = b[..keep.min(b.len())].to_vec();
                            v.resize(keep, 0);
                            v
                        }
                        None => vec![0; keep],
                    }
                }
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
            self.dirty.insert(i, buf);
        }
        self.size = new_size;
        Ok(())
    }

    pub fn truncate(&mut self, new_size: u64) -> Result<()> {
        if new_size > self.size {
            let zeros = vec![0u8; (new_size - self.size) as usize];
            return self.write(self.size, &zeros);
        }
        let count = self.block_count(new_size);
        self.dirty.retain(|i, _| *i < count);
        if let Some(last) = count.checked_sub(1) {
            let len = self.block_len(last, new_size);
            if let Some(buf) = self.dirty.get_mut(&last) {
                buf.truncate(len);
            }
        }
        self.cache.remove_from(count);
        self.size = new_size;
        Ok(())
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
            if !self.dirty.contains_key(&last) {
                let fetched = if self.needs_fetch(last) {
                    self.fetch(vec![last])?
                } else {
                    HashMap::new()
                };
                let len = self.block_len(last, self.size);
                let mut v = self
                    .local_block(last, &fetched)
                    .map(|b| b[..len.min(b.len())].to_vec())
                    .unwrap_or_default();
                v.resize(len, 0);
                self.dirty.insert(last, v);
            }
        }
        let size = self.size;
        let mut uploads: Vec<(u64, Bytes)> = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|(i, mut v)| {
                v.resize(self.block_len(i, size), 0);
                (i, Bytes::from(v))
            })
            .collect();
        let deferred = self
            .upload_last
            .and_then(|last| uploads.iter().position(|(i, _)| *i == last))
            .map(|pos| uploads.remove(pos));
        let store = self.store.clone();
        let keys = self.keys.clone();
        let concurrency = self.concurrency;
        let put_all = |batch: Vec<(u64, Bytes)>| {
            let store = store.clone();
            let keys = keys.clone();
            async move {
                futures::stream::iter(batch.into_iter().map(|(i, data)| {
                    let store = store.clone();
                    let key = keys.key(i);
                    async move {
                        let etag = store.put(&key, data.clone(), PutMode::Overwrite).await?;
                        Ok::<_, crate::error::Error>((i, data, etag))
                    }
                }))
                .buffer_unordered(concurrency)
                .try_collect::<Vec<_>>()
                .await
            }
        };
        let doomed: Vec<String> = (new_count..old_count).map(|i| keys.key(i)).collect();
        let result: Result<Vec<(u64, Bytes, Option<String>)>> = crate::runtime::block_on(async {
            let mut done = put_all(uploads).await?;
            delete_keys(store.clone(), doomed, concurrency).await?;
            if let Some(last) = deferred {
                done.extend(put_all(vec![last]).await?);
            }
            Ok(done)
        });
        match result {
            Ok(done) => {
                for (i, data, etag) in done {
                    if Some(i) == self.upload_last {
                        self.last_block_etag = etag;
                    }
                    if self.cache_enabled {
                        self.cache.insert(i, data);
                    }
                }
                self.cache.remove_from(new_count);
                self.stored_size = size;
                Ok(())
            }
            Err(e) => {
                // What reached the store is unknown: re-read everything from it next time.
                self.cache.clear();
                self.last_block_etag = None;
                Err(e)
            }
        }
    }
}

/// Copies `src[within..]` into `dst`, where only the first `valid` bytes of `src` are file
/// content; the rest reads as zeros.
fn copy_padded(dst: &mut [u8], src: &[u8], within: usize, valid: usize) {
    let avail = valid.min(src.len()).saturating_sub(within).min(dst.len());
    dst[..avail].copy_from_slice(&src[within..within + avail]);
    dst[avail..].fill(0);
}

#[cfg(test)]
mod tests;
