//! Keeping a block file's write buffer within the database's memory budget (`memoryLimit`):
//! past it, the oldest buffered blocks leave memory — to the temp file in the `sqlite-s3vfs`
//! layout, to the store in the versioned layout (uploaded early, under keys unique to the commit
//! attempt, so a commit that loses or never happens leaves only garbage for GC).

use super::*;
use crate::layout::versioned::commit::put_all;

/// A block this transaction uploaded early is gone.
pub(super) fn transaction_expired(key: &str) -> Error {
    Error::new(
        codes::TRANSACTION_EXPIRED,
        format!(
            "{key}: a block this transaction uploaded early was garbage-collected (the \
             transaction stayed open without writing for longer than GC's grace period); nothing \
             was published — run it again"
        ),
    )
}

impl<M: BlockMap> BlockFile<M> {
    /// After a write: past the budget, moves this file's least recently written blocks out of
    /// memory until half the budget is used. `last_written`, likely written again next, stays.
    pub(super) fn relieve(&mut self, last_written: u64) -> Result<()> {
        let budget = self.dirty.budget().clone();
        if !budget.over() {
            return Ok(());
        }
        let target = budget.limit() / 2;
        let bs = self.block_size;
        let early = self.map.early();
        // Early uploads are of full blocks only (their length is final until a truncate), and
        // never of block 0 (the versioned layout keeps it in the root).
        let uploads = early.is_some();
        let movable = self.dirty.oldest_in_memory(|i, len| {
            i != last_written && (!uploads || (i != 0 && len as u64 == bs))
        });
        let mut chosen = Vec::new();
        let mut freed = 0usize;
        for i in movable {
            if budget.used().saturating_sub(freed) <= target {
                break;
            }
            freed += self.dirty.get(i).map_or(0, Dirty::byte_len);
            chosen.push(i);
        }
        match early {
            Some(naming) => self.upload_early(&naming, chosen),
            None => self.spill_blocks(chosen),
        }
    }

    fn spill_blocks(&mut self, chosen: Vec<u64>) -> Result<()> {
        for i in chosen {
            let Some(data) = self.dirty.mem(i) else {
                continue;
            };
            let len = data.len();
            self.spill.write_at(i * self.block_size, data)?;
            self.dirty.set(i, Dirty::Spilled { len });
        }
        Ok(())
    }

    /// Uploads `chosen` (blocks held in memory) for the next version's commit attempt, in
    /// parallel; they are then read back from the store (or the cache) when needed.
    fn upload_early(&mut self, naming: &EarlyNaming, chosen: Vec<u64>) -> Result<()> {
        if chosen.is_empty() {
            return Ok(());
        }
        self.renew_stale_attempt()?;
        if self.early.is_none() {
            self.early = Some(EarlyAttempt::new(naming.version)?);
        }
        let early = self.early.as_mut().expect("set above");
        let started = Stamp::now();
        let mut batch = Vec::with_capacity(chosen.len());
        for i in chosen {
            let Some(data) = self.dirty.take_mem(i) else {
                continue;
            };
            let data = Bytes::from(data);
            let (key, stored, pointer) = naming.seal(&mut early.uploads, i, &data)?;
            batch.push((i, key, pointer, data, stored));
        }
        let objects: Vec<(String, Bytes)> = batch
            .iter()
            .map(|(_, key, _, _, stored)| (key.clone(), stored.clone()))
            .collect();
        let result =
            crate::runtime::block_on(put_all(self.store.clone(), &objects, self.concurrency));
        drop(objects);
        if let Err(e) = result {
            // Nothing changed: the blocks stay in memory (what landed is garbage for GC).
            for (i, _, _, data, _) in batch {
                self.dirty.put_mem(i, data.to_vec());
            }
            return Err(e);
        }
        early.last_upload = started;
        for (i, key, pointer, data, _) in batch {
            let len = data.len();
            if self.cache_enabled {
                self.cache.insert(key.clone(), data);
            }
            self.dirty.set(i, Dirty::Uploaded { key, pointer, len });
        }
        Ok(())
    }

    /// GC spares an attempt's objects only for its horizon after the newest one, and a commit
    /// relies on them for `MAX_BASE_AGE`: an attempt whose last upload is older (a transaction
    /// left open without writing) is copied to a fresh attempt before anything builds on it. So
    /// is a buffer holding blocks of another attempt than the current one (a batch save point
    /// restored after a renewal or a discard): a commit references only its own attempt's
    /// objects, which its own uploads keep alive. A block already collected fails the
    /// transaction (`ERR_TRANSACTION_EXPIRED`); nothing was published.
    pub fn renew_stale_attempt(&mut self) -> Result<()> {
        let current = self.early.as_ref().map(|e| e.uploads.attempt);
        let foreign = self.dirty.iter().any(|(_, d)| {
            matches!(d, Dirty::Uploaded { pointer, .. } if Some(pointer.attempt) != current)
        });
        let stale = self
            .early
            .as_ref()
            .is_some_and(|e| e.last_upload.elapsed() > MAX_BASE_AGE);
        if !stale && !foreign {
            return Ok(());
        }
        let naming = self
            .map
            .early()
            .ok_or_else(|| Error::internal("an early upload of a file rewritten in place"))?;
        let mut fresh = EarlyAttempt::new(naming.version)?;
        let moves: Vec<(u64, String, Pointer, Pointer, usize)> = self
            .dirty
            .iter()
            .filter_map(|(i, d)| match d {
                Dirty::Uploaded { key, pointer, len } => Some((i, key.clone(), *pointer, *len)),
                _ => None,
            })
            .map(|(i, from, p, len)| {
                // The same block under the fresh attempt, with the same codec.
                let np = fresh.uploads.next(p.crc, p.codec);
                (i, from, p, np, len)
            })
            .collect();
        let store = self.store.clone();
        let codec = naming.codec.clone();
        let copies = moves.into_iter().map(|(i, from, p, np, len)| {
            let store = store.clone();
            let codec = codec.clone();
            let to = naming.name(i, &np);
            async move {
                match store.get(&from, GetOptions::default()).await? {
                    GetOutcome::Found(obj) => {
                        // Checked, and (encrypted) sealed again: the name is part of its seal.
                        let (stored, np) = codec.rename_block(&from, i, &p, np, obj.body)?;
                        store.put(&to, stored, PutMode::Overwrite).await?;
                        Ok((i, to, np, len))
                    }
                    _ => Err(transaction_expired(&from)),
                }
            }
        });
        let moved = crate::runtime::block_on(
            futures::stream::iter(copies)
                .buffer_unordered(self.concurrency)
                .try_collect::<Vec<_>>(),
        )?;
        for (i, key, pointer, len) in moved {
            self.dirty.set(i, Dirty::Uploaded { key, pointer, len });
        }
        self.early = Some(fresh);
        Ok(())
    }

    /// Makes the early attempt look `by` older (tests of the renewal).
    #[cfg(test)]
    pub fn age_early_attempt(&mut self, by: std::time::Duration) {
        if let Some(e) = &mut self.early {
            e.last_upload = Stamp::now().earlier(by);
        }
    }
}
