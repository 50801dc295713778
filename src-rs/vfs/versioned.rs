//! The main database file of the versioned layout, in safe Rust: a snapshot pinned at each
//! `xLock(NONE->SHARED)`, writes buffered per connection, and one publish per lock session at
//! `COMMIT_ATOMIC_WRITE` or `COMMIT_PHASETWO` (never at xSync: SQLite also syncs while rolling
//! back). The rules and the SQLite call sequences behind them are in notes/design-review.md.

use super::file::{new_blocks, read_into, VfsError, VfsResult};
use super::locks::{LockLevel, Locks};
use super::DbContext;
use crate::blocks::{BlockFile, SavePoint};
use crate::clock::Stamp;
use crate::error::{codes, Error, Result};
use crate::layout::versioned::commit::{self, Layout, Outcome, Prepared};
use crate::layout::versioned::format::Root;
use crate::layout::versioned::map::VersionedMap;
use crate::layout::versioned::{find_head, get_root, newer_than, Names, Snapshot};
use crate::runtime::block_on;
use crate::sqlite_header;
use crate::store::{ObjectStore, PutMode};
use bytes::Bytes;
use rusqlite::ffi;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a "v+1 does not exist" answer is trusted before a LIST looks for the head instead
/// (GC's horizon minus a margin: past it, root(v+1) may have been created and pruned).
const TRUST_NEXT_ROOT: Duration = Duration::from_secs(55 * 60);

/// The highest version any connection of this process has seen, per database: no connection
/// pins below it (time never goes backwards between two connections).
static KNOWN: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

fn known_version(key: &str) -> u64 {
    KNOWN
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(key).copied())
        .unwrap_or(0)
}

fn raise_known(key: &str, v: u64) {
    let mut guard = KNOWN.lock().unwrap();
    let e = guard
        .get_or_insert_with(HashMap::new)
        .entry(key.to_string())
        .or_insert(0);
    *e = (*e).max(v);
}

/// Stores (by location) whose conditional create was probed and found to work.
static PROBED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Attempts of the conditional-write probe when the store fails transiently.
const PROBE_ATTEMPTS: u32 = 6;

/// Creates a scratch key, then creates it again: the second create's answer. A create is sent
/// once by the store (a resend could be answered 412 by our own first send), so a transient
/// failure starts over on a fresh key instead, with the store's backoff.
async fn probe_create_twice(store: &dyn ObjectStore, names: &Names) -> Result<Result<()>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let key = names.scratch("probe")?;
        let answer = async {
            store
                .put(&key, Bytes::from_static(b"1"), PutMode::Create)
                .await?;
            let second = store
                .put(&key, Bytes::from_static(b"2"), PutMode::Create)
                .await;
            Ok::<_, Error>(second.map(|_| ()))
        }
        .await;
        let _ = store.delete(&key).await;
        let failure = match answer {
            Ok(Err(e)) if e.is_transient() => e,
            Err(e) if e.is_transient() => e,
            Ok(second) => return Ok(second),
            Err(e) => return Err(e),
        };
        if attempt >= PROBE_ATTEMPTS {
            return Err(failure);
        }
        tokio::time::sleep(store.retry_delay(attempt, Some(&failure))).await;
    }
}

struct Batch {
    saved: SavePoint,
    /// The size of the writes in the batch (a page size).
    write_size: Option<usize>,
}

pub struct VersionedFile {
    ctx: Arc<DbContext>,
    names: Names,
    blocks: BlockFile<VersionedMap>,
    locks: Locks,
    loaded: bool,
    /// When v+1 was last seen absent (t_obs).
    observed_at: Option<Stamp>,
    /// The API call during which the pin was last confirmed current.
    observed_epoch: u64,
    /// Published during this lock session (a later truncate to the published size is a no-op).
    published: bool,
    batch: Option<Batch>,
}

impl VersionedFile {
    pub fn open(ctx: Arc<DbContext>) -> VersionedFile {
        let names = Names::with_keys(ctx.prefix.clone(), ctx.versioned.encryption.clone());
        let map = VersionedMap::new(
            names.clone(),
            ctx.versioned.compression,
            ctx.versioned.encryption.clone(),
            // Only a new encrypted database uses it (an existing one keeps its root's); the id
            // separates databases, its randomness is not what protects them.
            crate::layout::versioned::seal::new_database_id().unwrap_or_default(),
        );
        let blocks = new_blocks(&ctx, map, 0, None);
        VersionedFile {
            locks: Locks::for_snapshots(ctx.lock_key()),
            ctx,
            names,
            blocks,
            loaded: false,
            observed_at: None,
            observed_epoch: 0,
            published: false,
            batch: None,
        }
    }

    pub fn ctx(&self) -> &Arc<DbContext> {
        &self.ctx
    }

    /// The pinned version (kept in the context, where `serialize` and `db.version` see it).
    fn pinned(&self) -> Option<Arc<Snapshot>> {
        self.ctx.pinned.lock().unwrap().clone()
    }

    fn version(&self) -> u64 {
        self.pinned().map(|s| s.version()).unwrap_or(0)
    }

    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> VfsResult<()> {
        if !self.loaded {
            self.refresh()
                .map_err(VfsError::io(ffi::SQLITE_IOERR_READ))?;
        }
        read_into(&mut self.blocks, offset, buf)
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> VfsResult<()> {
        if let Some(b) = self.batch.as_mut() {
            b.write_size = Some(data.len());
        }
        self.blocks
            .write(offset, data)
            .map_err(VfsError::io(ffi::SQLITE_IOERR_WRITE))
    }

    pub fn truncate(&mut self, size: u64) -> VfsResult<()> {
        if self.published && size == self.blocks.size() {
            // The published version already has this size (taken from the header).
            return Ok(());
        }
        self.blocks
            .truncate(size)
            .map_err(VfsError::io(ffi::SQLITE_IOERR_TRUNCATE))
    }

    pub fn file_size(&mut self) -> VfsResult<u64> {
        if !self.loaded {
            self.refresh()
                .map_err(VfsError::io(ffi::SQLITE_IOERR_FSTAT))?;
        }
        Ok(self.blocks.size())
    }

    pub fn lock(&mut self, level: LockLevel) -> VfsResult<()> {
        let was = self.locks.level();
        self.locks
            .lock(level)
            .map_err(|_| VfsError::code(ffi::SQLITE_BUSY))?;
        let checked = if was == LockLevel::None {
            self.refresh().map_err(VfsError::io(ffi::SQLITE_IOERR_LOCK))
        } else if was == LockLevel::Shared && level >= LockLevel::Reserved {
            self.begin_write()
        } else {
            Ok(())
        };
        if checked.is_err() {
            self.locks.unlock(was);
        }
        checked
    }

    pub fn unlock(&mut self, level: LockLevel) -> VfsResult<()> {
        if level <= LockLevel::Shared {
            // A lock session that ends without a publish rolled back: drop its writes.
            self.blocks.discard();
            self.batch = None;
            self.published = false;
        }
        self.locks.unlock(level);
        Ok(())
    }

    pub fn check_reserved_lock(&self) -> bool {
        self.locks.reserved_by_anyone()
    }

    /// Pins the version this lock session reads (at most one check of the store per API call;
    /// none within `maxStaleness` of the last one).
    fn refresh(&mut self) -> Result<()> {
        let epoch = self.ctx.epoch();
        let key = self.ctx.lock_key();
        if let Some(v) = self.ctx.versioned.time_travel {
            if !self.loaded {
                let snap = block_on(get_root(&*self.ctx.store, &self.names, v))?
                    .filter(|s| !s.root.is_pruned())
                    .ok_or_else(|| {
                        Error::new(
                            codes::VERSION_GONE,
                            format!(
                                "{}: version {v} does not exist (or was garbage-collected)",
                                self.place()
                            ),
                        )
                    })?;
                self.pin(Some(Arc::new(snap)));
            }
            return Ok(());
        }
        if self.loaded && epoch == self.observed_epoch {
            return Ok(());
        }
        let fresh_enough = self.ctx.versioned.max_staleness > Duration::ZERO
            && self
                .observed_at
                .is_some_and(|t| t.elapsed() < self.ctx.versioned.max_staleness)
            && self.version() >= known_version(&key);
        if self.loaded && fresh_enough {
            return Ok(());
        }
        let store = self.ctx.store.clone();
        let newer = if !self.loaded {
            match self.ctx.take_detected_head() {
                Some(Some(v)) => match block_on(get_root(&*store, &self.names, v))? {
                    Some(s) if !s.root.is_pruned() => Some(s),
                    _ => block_on(find_head(&*store, &self.names))?,
                },
                Some(None) => None,
                None => block_on(find_head(&*store, &self.names))?,
            }
        } else if self
            .observed_at
            .is_some_and(|t| t.elapsed() < TRUST_NEXT_ROOT)
        {
            block_on(newer_than(&*store, &self.names, self.version()))?
        } else {
            block_on(find_head(&*store, &self.names))?.filter(|h| h.version() > self.version())
        };
        match newer {
            Some(snap) if snap.root.is_pruned() => {
                return Err(Error::new(
                    codes::VERSION_GONE,
                    format!("{}: the newest root is a tombstone", self.place()),
                ))
            }
            Some(snap) => self.pin(Some(Arc::new(snap))),
            None if !self.loaded => self.pin(None),
            None => {}
        }
        self.observed_at = Some(Stamp::now());
        self.observed_epoch = epoch;
        Ok(())
    }

    fn place(&self) -> String {
        format!("{}/{}", self.ctx.store.location(), self.ctx.prefix)
    }

    fn pin(&mut self, snap: Option<Arc<Snapshot>>) {
        let block0 = snap
            .as_ref()
            .map(|s| disguise_counter(&s.root))
            .unwrap_or_default();
        if let Some(s) = &snap {
            raise_known(&self.ctx.lock_key(), s.version());
        }
        *self.ctx.pinned.lock().unwrap() = snap.clone();
        self.blocks.pin(snap, block0);
        self.loaded = true;
    }

    /// `xLock(SHARED->RESERVED)`: a write on a stale pin fails now, before anything is uploaded
    /// (`SQLITE_BUSY_SNAPSHOT`: SQLite re-pins and retries an autocommit statement itself).
    fn begin_write(&mut self) -> VfsResult<()> {
        if self.ctx.versioned.time_travel.is_some() {
            return Err(VfsError {
                code: ffi::SQLITE_READONLY,
                detail: Some(read_only_version(self.version())),
            });
        }
        self.probe_conditional_writes()
            .map_err(VfsError::io(ffi::SQLITE_IOERR_LOCK))?;
        // Settle an earlier commit of unknown outcome first: nothing is written before it is
        // known whether it landed.
        match decide_unknown_commit(&self.ctx) {
            Ok(Settled::Nothing) => {}
            Ok(verdict) => {
                self.ctx.settled.lock().unwrap().push_back(verdict);
                return Err(self.lost("an earlier commit was settled"));
            }
            Err(e) => return Err(VfsError::io(ffi::SQLITE_IOERR_LOCK)(e)),
        }
        if self.observed_epoch != self.ctx.epoch()
            || self.version() < known_version(&self.ctx.lock_key())
        {
            let store = self.ctx.store.clone();
            let newer = block_on(newer_than(&*store, &self.names, self.version()))
                .map_err(VfsError::io(ffi::SQLITE_IOERR_LOCK))?;
            if let Some(n) = newer {
                raise_known(&self.ctx.lock_key(), n.version());
                return Err(self.lost("a newer version exists"));
            }
            self.observed_at = Some(Stamp::now());
            self.observed_epoch = self.ctx.epoch();
        }
        Ok(())
    }

    /// A stale base: the transaction must start again on the newest version.
    fn lost(&mut self, why: &str) -> VfsError {
        self.observed_at = None;
        self.observed_epoch = 0;
        VfsError {
            code: ffi::SQLITE_BUSY_SNAPSHOT,
            detail: Some(
                Error::new(
                    "SQLITE_BUSY",
                    format!(
                        "{}: another writer committed after version {} ({why}); nothing of \
                         this transaction was published — run it again",
                        self.place(),
                        self.version()
                    ),
                )
                .with_kind(crate::error::ErrorKind::Conflict),
            ),
        }
    }

    /// Once per process and store, before the first write: a create on a scratch key must fail
    /// when repeated. A store that ignores `If-None-Match` cannot detect concurrent writers.
    fn probe_conditional_writes(&self) -> Result<()> {
        let location = self.ctx.store.identity();
        if self.ctx.versioned.single_writer
            || PROBED
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|s| s.contains(&location))
        {
            return Ok(());
        }
        let second = block_on(probe_create_twice(&*self.ctx.store, &self.names))?;
        match second {
            Err(e) if e.is_conflict() => {
                PROBED
                    .lock()
                    .unwrap()
                    .get_or_insert_with(HashSet::new)
                    .insert(location);
                Ok(())
            }
            Ok(_) => Err(Error::new(
                codes::NO_CONDITIONAL_WRITES,
                format!(
                    "{location} ignores If-None-Match on PUT, so concurrent writers could \
                     overwrite each other's commits; use a store with conditional writes, or \
                     pass {{ singleWriter: true }} if only one process ever writes this database"
                ),
            )),
            Err(e) => Err(e),
        }
    }

    pub fn begin_atomic(&mut self) {
        self.batch = Some(Batch {
            saved: self.blocks.save_point(),
            write_size: None,
        });
    }

    pub fn rollback_atomic(&mut self) {
        if let Some(b) = self.batch.take() {
            self.blocks.restore(b.saved);
        }
    }

    /// `COMMIT_ATOMIC_WRITE`: publish now, unless the batch changes the page size (then the
    /// pages of the new size come after it: publish at PHASETWO).
    pub fn commit_atomic(&mut self) -> VfsResult<()> {
        let Some(batch) = self.batch.take() else {
            return self.publish();
        };
        let header_page = self
            .blocks
            .dirty_block(0)
            .and_then(sqlite_header::page_size);
        if let (Some(p), Some(w)) = (header_page, batch.write_size) {
            if p as usize != w {
                return Ok(());
            }
        }
        match self.publish() {
            Err(e) if e.code & 0xff == ffi::SQLITE_IOERR => {
                // Nothing was published: SQLite falls back to its journal path, which
                // rewrites only its still-dirty pages, so keep the ones written before the batch.
                self.blocks.restore(batch.saved);
                Err(e)
            }
            other => other,
        }
    }

    /// `COMMIT_PHASETWO`: publish what is still unpublished (every non-batch path).
    pub fn commit_phase_two(&mut self) -> VfsResult<()> {
        if self.published {
            return Ok(());
        }
        self.publish()
    }

    fn publish(&mut self) -> VfsResult<()> {
        if !self.blocks.is_dirty() {
            return Ok(());
        }
        let taken = self
            .blocks
            .renew_stale_attempt()
            .and_then(|_| self.blocks.changes());
        let crate::blocks::Changes {
            blocks: changes,
            uploaded,
            size: buffer_size,
        } = taken.map_err(VfsError::io(ffi::SQLITE_IOERR_WRITE))?;
        let block0 = changes
            .iter()
            .find(|(i, _)| *i == 0)
            .map(|(_, b)| b.clone())
            .or_else(|| self.pinned().map(|s| s.root.block0.clone()))
            .unwrap_or_default();
        let file_size = sqlite_header::file_size(&block0).unwrap_or(buffer_size);
        let page_size = sqlite_header::page_size(&block0).unwrap_or(0);
        let store = self.ctx.store.clone();
        let names = self.names.clone();
        let base = self.pinned();
        let concurrency = self.ctx.concurrency;
        let block_size = self.blocks.block_size();
        let (codec, codecs) = self.blocks.commit_codec();
        let (segments, early) = self.blocks.commit_parts();
        let early = early.map(|e| commit::Early {
            uploads: &mut e.uploads,
            blocks: uploaded,
        });
        let mut observed = self.observed_at;
        // Outer error: nothing was published (the root was never sent).
        let result: Result<(Prepared, Result<Outcome>)> = block_on(async {
            let mut prepared = commit::prepare(
                &*store,
                &names,
                base.as_deref(),
                segments,
                changes,
                early,
                Layout {
                    page_size,
                    block_size,
                    file_size,
                    codec,
                    codecs,
                },
            )
            .await?;
            commit::upload(store.clone(), &mut prepared, concurrency).await?;
            let outcome =
                commit::publish_root(store, &names, &mut prepared, &mut observed, concurrency)
                    .await;
            Ok((prepared, outcome))
        });
        match result {
            Ok((prepared, Ok(Outcome::Committed))) => {
                let uploaded = prepared.block_uploads().to_vec();
                let snap = Snapshot {
                    root: prepared.root.clone(),
                };
                self.pin(Some(Arc::new(snap)));
                self.blocks.cache_uploaded(uploaded);
                self.observed_at = Some(Stamp::now());
                self.observed_epoch = self.ctx.epoch();
                self.published = true;
                Ok(())
            }
            Ok((prepared, Ok(Outcome::Lost))) => {
                raise_known(&self.ctx.lock_key(), prepared.root.version);
                self.blocks.discard();
                Err(self.lost("its root was created first"))
            }
            Ok((prepared, Err(e))) => {
                // The root may have landed: remember it, and never report an I/O error (SQLite
                // would take its journal fallback and publish the transaction a second time).
                if e.is_unknown_outcome() {
                    *self.ctx.unknown_commit.lock().unwrap() = Some(prepared);
                }
                self.blocks.discard();
                self.observed_at = None;
                self.observed_epoch = 0;
                Err(VfsError {
                    code: ffi::SQLITE_PROTOCOL,
                    detail: Some(e),
                })
            }
            Err(e) => Err(VfsError::io(ffi::SQLITE_IOERR_WRITE)(e)),
        }
    }
}

/// What settling a commit of unknown outcome found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// No commit of this connection is of unknown outcome.
    Nothing,
    /// The commit of this version landed.
    Committed(u64),
    /// It did not: nothing of it is visible (redo the transaction if it is still wanted).
    Lost(u64),
}

/// `db.settle()`: verdicts that writes already reached, oldest first (one a call), then the
/// decision of the pending commit.
pub fn settle(ctx: &DbContext) -> Result<Settled> {
    if let Some(verdict) = ctx.settled.lock().unwrap().pop_front() {
        return Ok(verdict);
    }
    decide_unknown_commit(ctx)
}

/// Decides the connection's commit of unknown outcome, if there is one: its root is read back
/// (and, while the attempt is recent enough to be safe, its same bytes resent) until the answer
/// is definite. An error means it is still unknown; the commit stays pending.
fn decide_unknown_commit(ctx: &DbContext) -> Result<Settled> {
    let Some(mut prepared) = ctx.unknown_commit.lock().unwrap().take() else {
        return Ok(Settled::Nothing);
    };
    let version = prepared.root.version;
    match block_on(commit::settle_root(
        ctx.store.clone(),
        &Names::with_keys(ctx.prefix.clone(), ctx.versioned.encryption.clone()),
        &mut prepared,
        ctx.concurrency,
    )) {
        Ok(Outcome::Committed) => {
            raise_known(&ctx.lock_key(), version);
            Ok(Settled::Committed(version))
        }
        Ok(Outcome::Lost) => Ok(Settled::Lost(version)),
        Err(e) => {
            if e.is_unknown_outcome() {
                *ctx.unknown_commit.lock().unwrap() = Some(prepared);
            }
            Err(e)
        }
    }
}

/// Block 0 as readers see it: bytes 24..28 (and 92..96 when they matched) replaced with a hash of
/// (version, attempt), so SQLite's page cache never survives across two versions that happen to
/// share a change counter (a lost commit, a replaced database).
fn disguise_counter(root: &Root) -> Bytes {
    let mut b = root.block0.to_vec();
    if b.len() >= sqlite_header::HEADER_LEN {
        let mut h = crc32c::crc32c(&root.version.to_le_bytes());
        h = crc32c::crc32c_append(h, &root.attempt);
        let matched = b[24..28] == b[92..96];
        b[24..28].copy_from_slice(&h.to_be_bytes());
        if matched {
            b[92..96].copy_from_slice(&h.to_be_bytes());
        }
    }
    Bytes::from(b)
}

/// A write to a database opened at an older version.
pub fn read_only_version(v: u64) -> Error {
    Error::new(
        codes::READ_ONLY_VERSION,
        format!("this database was opened at version {v} (time travel) and is read-only"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_is_built_with_batch_atomic_writes() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let on: bool = conn
            .query_row(
                "SELECT sqlite_compileoption_used('ENABLE_BATCH_ATOMIC_WRITE')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            on,
            "the versioned layout's commit needs SQLITE_ENABLE_BATCH_ATOMIC_WRITE"
        );
    }
}
