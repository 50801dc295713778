//! The files the VFS keeps in S3, in safe Rust: the main database (with the `sqlite-s3vfs`
//! layout's cache rule) and its rollback journal. `ffi.rs` calls these and turns the results into
//! SQLite result codes.

use super::locks::{LockLevel, Locks};
use super::versioned::VersionedFile;
use super::DbContext;
use crate::blocks::spill::LocalFile;
use crate::blocks::{BlockFile, BlockFileOptions};
use crate::error::Error;
use crate::layout::block_map::BlockMap;
use crate::layout::compat::{
    check_block_size, database_size, journal_prefix, list_blocks, listed_size, BlockKeys, CompatMap,
};
use crate::runtime::block_on;
use crate::store::{delete_keys, store_now, GetOptions, GetOutcome};
use rusqlite::ffi;
use std::sync::Arc;

/// An SQLite result code, and the error behind it when there is one (for the user's message).
pub struct VfsError {
    pub code: i32,
    pub detail: Option<Error>,
}

impl VfsError {
    pub fn code(code: i32) -> Self {
        VfsError { code, detail: None }
    }

    pub(super) fn io(code: i32) -> impl FnOnce(Error) -> VfsError {
        move |e| VfsError {
            code,
            detail: Some(e),
        }
    }
}

pub type VfsResult<T> = Result<T, VfsError>;

/// How far (at most, and at most half the age) the local clock may run behind the store's before
/// a dead writer's journal is only noticed later than `hot_journal_age` (never earlier: the
/// store's clock decides).
const LOCAL_CLOCK_MARGIN_MS: i64 = 30_000;

/// Bytes of a rollback journal header that are zero when no transaction is in it.
const JOURNAL_HEADER_LEN: u64 = 28;

/// A block file of this database, with the context's block size, cache and concurrency.
pub(super) fn new_blocks<M: BlockMap>(
    ctx: &DbContext,
    map: M,
    size: u64,
    upload_last: Option<u64>,
) -> BlockFile<M> {
    BlockFile::new(
        ctx.store.clone(),
        ctx.stats.clone(),
        map,
        size,
        BlockFileOptions {
            block_size: ctx.block_size,
            cache_bytes: ctx.cache_bytes,
            concurrency: ctx.concurrency,
            read_ahead: ctx.read_ahead,
            upload_last,
            disk: ctx.disk_cache.clone(),
            budget: ctx.memory.clone(),
        },
    )
}

/// Reads `buf` at `offset`; a read past the end zero-fills and reports `SQLITE_IOERR_SHORT_READ`.
pub(super) fn read_into<M: BlockMap>(
    blocks: &mut BlockFile<M>,
    offset: u64,
    buf: &mut [u8],
) -> VfsResult<()> {
    let n = blocks
        .read(offset, buf)
        .map_err(VfsError::io(ffi::SQLITE_IOERR_READ))?;
    short_read(buf, n)
}

/// Ends a read that supplied the first `n` bytes of `buf`: SQLite wants the rest zero-filled and
/// `SQLITE_IOERR_SHORT_READ`.
fn short_read(buf: &mut [u8], n: usize) -> VfsResult<()> {
    if n < buf.len() {
        buf[n..].fill(0);
        return Err(VfsError::code(ffi::SQLITE_IOERR_SHORT_READ));
    }
    Ok(())
}

pub enum S3File {
    Db(DbFile),
    Journal(JournalFile),
    Versioned(Box<VersionedFile>),
    /// A versioned database's rollback journal: local only, in memory or (past `memoryLimit`) an
    /// anonymous temp file. A crash loses nothing (no version was published), and a journal kept
    /// where a later run could find it might be "rolled back" onto a newer version.
    Local(Arc<DbContext>, LocalFile),
}

impl S3File {
    pub fn ctx(&self) -> &Arc<DbContext> {
        match self {
            S3File::Db(f) => &f.ctx,
            S3File::Journal(f) => &f.ctx,
            S3File::Versioned(f) => f.ctx(),
            S3File::Local(ctx, _) => ctx,
        }
    }

    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> VfsResult<()> {
        match self {
            S3File::Versioned(f) => f.read(offset, buf),
            S3File::Local(_, file) => {
                let n = file
                    .read(offset, buf)
                    .map_err(VfsError::io(ffi::SQLITE_IOERR_READ))?;
                short_read(buf, n)
            }
            S3File::Db(f) => {
                f.refresh_if_unlocked()?;
                let read = read_into(&mut f.blocks, offset, buf);
                f.disguise_counter(offset, buf);
                read
            }
            S3File::Journal(f) => read_into(&mut f.blocks, offset, buf),
        }
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> VfsResult<()> {
        let blocks = match self {
            S3File::Db(f) => &mut f.blocks,
            S3File::Journal(f) => &mut f.blocks,
            S3File::Versioned(f) => return f.write(offset, data),
            S3File::Local(_, file) => {
                return file
                    .write(offset, data)
                    .map_err(VfsError::io(ffi::SQLITE_IOERR_WRITE))
            }
        };
        blocks
            .write(offset, data)
            .map_err(VfsError::io(ffi::SQLITE_IOERR_WRITE))
    }

    pub fn truncate(&mut self, size: u64) -> VfsResult<()> {
        let map = VfsError::io(ffi::SQLITE_IOERR_TRUNCATE);
        match self {
            S3File::Db(f) => f.blocks.truncate(size).map_err(map),
            // A journal truncation is applied at once: TRUNCATE mode ends a transaction with it,
            // and a journal left in the store would look like a commit in flight.
            S3File::Journal(f) => f.blocks.truncate(size).and_then(|_| f.flush()).map_err(map),
            S3File::Versioned(f) => f.truncate(size),
            S3File::Local(_, file) => file.truncate(size).map_err(map),
        }
    }

    pub fn sync(&mut self) -> VfsResult<()> {
        let map = VfsError::io(ffi::SQLITE_IOERR_FSYNC);
        match self {
            S3File::Db(f) => f.blocks.flush().map_err(map),
            S3File::Journal(f) => f.flush().map_err(map),
            // Never a publish: SQLite also syncs while rolling back.
            S3File::Versioned(_) | S3File::Local(..) => Ok(()),
        }
    }

    pub fn file_size(&mut self) -> VfsResult<u64> {
        match self {
            S3File::Db(f) => {
                f.refresh_if_unlocked()?;
                Ok(f.blocks.size())
            }
            S3File::Journal(f) => Ok(f.blocks.size()),
            S3File::Versioned(f) => f.file_size(),
            S3File::Local(_, file) => Ok(file.size()),
        }
    }

    pub fn lock(&mut self, level: LockLevel) -> VfsResult<()> {
        match self {
            S3File::Db(f) => f.lock(level),
            S3File::Versioned(f) => f.lock(level),
            S3File::Journal(_) | S3File::Local(..) => Ok(()),
        }
    }

    pub fn unlock(&mut self, level: LockLevel) -> VfsResult<()> {
        match self {
            S3File::Db(f) => f.unlock(level),
            S3File::Versioned(f) => f.unlock(level),
            S3File::Journal(_) | S3File::Local(..) => Ok(()),
        }
    }

    pub fn check_reserved_lock(&self) -> bool {
        match self {
            S3File::Db(f) => f.locks.reserved_by_anyone(),
            S3File::Versioned(f) => f.check_reserved_lock(),
            S3File::Journal(_) | S3File::Local(..) => false,
        }
    }

    /// `SQLITE_FCNTL_COMMIT_PHASETWO`: the commit is done; anything still buffered (as with
    /// `synchronous=OFF`, which never calls xSync) is uploaded now.
    pub fn commit_phase_two(&mut self) -> VfsResult<()> {
        match self {
            S3File::Db(f) => f
                .blocks
                .flush()
                .map_err(VfsError::io(ffi::SQLITE_IOERR_FSYNC)),
            S3File::Versioned(f) => f.commit_phase_two(),
            S3File::Journal(_) | S3File::Local(..) => Ok(()),
        }
    }

    /// The batch-atomic write controls (versioned layout only; the other files never see them,
    /// as only the versioned main database advertises `SQLITE_IOCAP_BATCH_ATOMIC`).
    pub fn atomic_write(&mut self, op: AtomicOp) -> VfsResult<()> {
        let S3File::Versioned(f) = self else {
            return Err(VfsError::code(ffi::SQLITE_NOTFOUND));
        };
        match op {
            AtomicOp::Begin => f.begin_atomic(),
            AtomicOp::Commit => return f.commit_atomic(),
            AtomicOp::Rollback => f.rollback_atomic(),
        }
        Ok(())
    }

    pub fn device_characteristics(&self) -> i32 {
        match self {
            S3File::Versioned(_) => ffi::SQLITE_IOCAP_BATCH_ATOMIC,
            _ => 0,
        }
    }

    pub fn close(&mut self) -> VfsResult<()> {
        let map = VfsError::io(ffi::SQLITE_IOERR_CLOSE);
        match self {
            S3File::Db(f) => f.blocks.flush().map_err(map),
            S3File::Journal(f) => f.flush().map_err(map),
            S3File::Versioned(_) | S3File::Local(..) => Ok(()),
        }
    }
}

pub enum AtomicOp {
    Begin,
    Commit,
    Rollback,
}

/// A `PRAGMA` this VFS refuses, with the reason: both would make other processes' commits
/// invisible to us (or ours to them), since there is no shared memory or lock across machines.
pub fn refused_pragma(name: &str, value: Option<&str>) -> Option<String> {
    let value = value?.trim().trim_matches(|c| c == '\'' || c == '"');
    if name.eq_ignore_ascii_case("journal_mode") && value.eq_ignore_ascii_case("wal") {
        return Some(
            "journal_mode=WAL is not supported on S3: it needs shared memory between all \
             readers and writers; use DELETE, TRUNCATE, PERSIST, MEMORY or OFF"
                .into(),
        );
    }
    if name.eq_ignore_ascii_case("locking_mode") && value.eq_ignore_ascii_case("exclusive") {
        return Some(
            "locking_mode=EXCLUSIVE is not supported on S3: without lock cycles this \
             connection would never see other processes' commits"
                .into(),
        );
    }
    None
}

pub struct DbFile {
    ctx: Arc<DbContext>,
    blocks: BlockFile<CompatMap>,
    locks: Locks,
    /// The API call during which we last checked the store for another process's commit.
    checked_epoch: u64,
    /// Another process's commit is in flight (its journal is in the store): read uncached.
    foreign_commit: bool,
    /// While a foreign commit is in flight: what page 1's change counter reads as, new for each
    /// check of the store. Pages read in that window may be half old, half new, and SQLite keeps
    /// its page cache for as long as bytes 24..40 of page 1 do not change, which they would not
    /// once the writer finishes (it wrote block 0 first): so they read differently every time.
    disguise: Option<u32>,
}

impl DbFile {
    pub fn open(ctx: Arc<DbContext>) -> DbFile {
        let blocks = new_blocks(
            &ctx,
            CompatMap::new(BlockKeys::new(ctx.prefix.clone())),
            0,
            Some(0),
        );
        DbFile {
            locks: Locks::new(ctx.lock_key()),
            ctx,
            blocks,
            checked_epoch: 0,
            foreign_commit: false,
            disguise: None,
        }
    }

    fn refresh_if_unlocked(&mut self) -> VfsResult<()> {
        if self.locks.level() == LockLevel::None {
            self.refresh()
                .map_err(VfsError::io(ffi::SQLITE_IOERR_READ))?;
        }
        Ok(())
    }

    fn lock(&mut self, level: LockLevel) -> VfsResult<()> {
        let was = self.locks.level();
        self.locks
            .lock(level)
            .map_err(|_| VfsError::code(ffi::SQLITE_BUSY))?;
        if was == LockLevel::None {
            if let Err(e) = self.refresh() {
                self.locks.unlock(LockLevel::None);
                return Err(VfsError::io(ffi::SQLITE_IOERR_LOCK)(e));
            }
        }
        Ok(())
    }

    fn unlock(&mut self, level: LockLevel) -> VfsResult<()> {
        // Writes still buffered when the write lock goes (a path without xSync or PHASETWO, or
        // a rollback whose upload failed) are uploaded, never silently kept.
        let flushed = if level <= LockLevel::Shared && self.blocks.is_dirty() {
            self.blocks.flush()
        } else {
            Ok(())
        };
        if flushed.is_err() {
            self.abandon_failed_commit();
        }
        self.locks.unlock(level);
        flushed.map_err(VfsError::io(ffi::SQLITE_IOERR_UNLOCK))
    }

    /// The transaction is over and its pages could not all be stored: what reached the store
    /// is unknown. Forget the buffer (the next transaction reads the store again), and mark
    /// our journal, if one was stored, as hot: SQLite then rolls back whatever landed.
    fn abandon_failed_commit(&mut self) {
        self.blocks.discard();
        self.checked_epoch = 0;
        self.ctx.orphan_own_journal();
    }

    /// Replaces the change counter (bytes 24..28, and 92..96 when they matched it) in what a read
    /// of the file returned, while a foreign commit is in flight (see `disguise`).
    fn disguise_counter(&self, offset: u64, buf: &mut [u8]) {
        let Some(value) = self.disguise else {
            return;
        };
        let at = |pos: u64| {
            (pos >= offset && pos + 4 <= offset + buf.len() as u64).then(|| (pos - offset) as usize)
        };
        let (Some(c), v) = (at(24), at(92)) else {
            return;
        };
        let bytes = value.to_be_bytes();
        if let Some(v) = v {
            if buf[c..c + 4] == buf[v..v + 4] {
                buf[v..v + 4].copy_from_slice(&bytes);
            }
        }
        buf[c..c + 4].copy_from_slice(&bytes);
    }

    /// The `sqlite-s3vfs` layout's cache rule: at most once per API call, a conditional GET of
    /// block 0 (which holds the change counter SQLite bumps on every commit). 304: unchanged.
    /// 200: a new generation — drop cached blocks, take the size from the header (a LIST only
    /// when the header cannot tell) and look for a commit in flight.
    fn refresh(&mut self) -> crate::error::Result<()> {
        let epoch = self.ctx.epoch();
        if epoch == self.checked_epoch || self.blocks.is_dirty() {
            return Ok(());
        }
        let key0 = self.blocks.keys().key(0);
        let opts = GetOptions {
            range: None,
            if_none_match: self.blocks.last_block_etag().map(str::to_string),
        };
        match block_on(self.ctx.store.get(&key0, opts))? {
            GetOutcome::NotModified => {
                if self.foreign_commit {
                    self.check_journal()?;
                }
            }
            GetOutcome::NotFound => {
                self.blocks.reset(0, None);
                self.foreign_commit = false;
                self.blocks.set_cache_enabled(true);
            }
            GetOutcome::Found(obj) => {
                let size = block_on(database_size(
                    &*self.ctx.store,
                    self.blocks.keys(),
                    &obj.body,
                ))?;
                let place = format!("{}/{}", self.ctx.store.location(), self.ctx.prefix);
                let (block_size, block0) = (self.blocks.block_size(), obj.body.clone());
                self.blocks.reset(size, Some((obj.body, obj.etag)));
                self.check_journal()?;
                // Before SQLite reads anything (a hot journal rolled back with the wrong block
                // size would damage the file); with a commit in flight, only what none explains.
                check_block_size(&place, block_size, &block0, size, !self.foreign_commit)?;
            }
        }
        self.checked_epoch = epoch;
        Ok(())
    }

    /// Looks at the first bytes of the journal: a non-zero header means a commit is in flight
    /// (or was abandoned), so blocks may be half old, half new.
    fn check_journal(&mut self) -> crate::error::Result<()> {
        let key = BlockKeys::new(journal_prefix(&self.ctx.prefix)).key(0);
        let opts = GetOptions {
            range: Some((0, JOURNAL_HEADER_LEN)),
            if_none_match: None,
        };
        let (present, in_flight, etag, modified) = match block_on(self.ctx.store.get(&key, opts))? {
            GetOutcome::Found(obj) => (
                true,
                obj.body.iter().any(|b| *b != 0),
                obj.etag,
                obj.last_modified_ms,
            ),
            _ => (false, false, None, None),
        };
        let dead = in_flight && self.writer_looks_dead(modified)?;
        self.foreign_commit = in_flight;
        self.disguise = if in_flight {
            Some(
                crate::layout::versioned::new_attempt_id()
                    .map_or(0, |a| u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            )
        } else {
            None
        };
        self.blocks.set_cache_enabled(!in_flight);
        self.ctx.update_journal(|j| {
            // Ours only while it is the very object we stored.
            if j.orphaned.is_some() && j.orphaned != etag {
                j.orphaned = None;
            }
            j.present = present;
            j.hot = in_flight && (j.orphaned.is_some() || dead);
            j.size = None;
        });
        Ok(())
    }

    /// Whether the writer of a journal in flight looks dead: neither its journal nor any block
    /// of the database was written for `hot_journal_age`, measured on the store's clock alone
    /// (a probe object's LastModified against the objects'), so neither a skewed local clock nor
    /// a suspend makes a live writer look old, and any connection, however short-lived, can
    /// decide. A live writer keeps uploading blocks after its journal; one that stays silent
    /// longer than the age (a stalled upload, a transaction held open after a cache spill)
    /// looks dead: this layout has no lease. The database is listed only for a journal already
    /// that old.
    fn writer_looks_dead(&self, journal_modified: Option<i64>) -> crate::error::Result<bool> {
        // A store that reports no LastModified gives no age: never taken for dead.
        let Some(journal_modified) = journal_modified else {
            return Ok(false);
        };
        // LastModified has a resolution of one second: a second more, so that a writer is never
        // taken for dead before a whole age of silence.
        let age = self.ctx.compat.hot_journal_age.as_millis() as i64 + 1000;
        // The local clock only decides when to ask the store (a young journal costs nothing); a
        // local clock behind the store's only delays the question.
        let margin = LOCAL_CLOCK_MARGIN_MS.min(age / 2);
        if crate::store::now_ms() - journal_modified < age - margin {
            return Ok(false);
        }
        let scratch =
            crate::layout::versioned::Names::new(self.ctx.prefix.clone()).scratch("clock")?;
        // A reader that may not write (read-only credentials) cannot roll anything back anyway.
        let Ok(now) = block_on(store_now(&*self.ctx.store, &scratch)) else {
            return Ok(false);
        };
        if now - journal_modified < age {
            return Ok(false);
        }
        let newest = self.newest_block_time()?.unwrap_or(journal_modified);
        Ok(now - newest.max(journal_modified) >= age)
    }

    /// The newest LastModified among the database's blocks (one LIST per 1,000 blocks).
    fn newest_block_time(&self) -> crate::error::Result<Option<i64>> {
        let blocks = block_on(list_blocks(&*self.ctx.store, self.blocks.keys()))?;
        Ok(blocks.iter().filter_map(|o| o.last_modified_ms).max())
    }
}

pub struct JournalFile {
    ctx: Arc<DbContext>,
    blocks: BlockFile<CompatMap>,
}

impl JournalFile {
    pub fn open(ctx: Arc<DbContext>) -> crate::error::Result<JournalFile> {
        let keys = BlockKeys::new(journal_prefix(&ctx.prefix));
        let state = ctx.journal_state();
        let size = if !state.present {
            0
        } else if let Some(size) = state.size.filter(|_| !state.hot) {
            size
        } else {
            block_on(listed_size(&*ctx.store, &keys))?
        };
        // Block 0 (the header) is uploaded last, and its ETag kept: it names this journal.
        let blocks = new_blocks(&ctx, CompatMap::new(keys), size, Some(0));
        Ok(JournalFile { ctx, blocks })
    }

    fn flush(&mut self) -> crate::error::Result<()> {
        self.blocks.flush()?;
        let size = self.blocks.size();
        let etag = self.blocks.last_block_etag().map(str::to_string);
        self.ctx.update_journal(|j| {
            j.present = size > 0;
            j.size = Some(size);
            if etag.is_some() {
                j.own_etag = etag;
            }
        });
        Ok(())
    }
}

/// `xDelete` of a journal: removes its objects (a LIST only when we do not know how many).
/// Deleting the journal is the commit point of this layout, and other processes know a journal
/// by its block 0 (the header): that block goes first, alone. If it cannot be deleted, nothing
/// is, and the journal is marked hot so SQLite rolls the transaction back (the commit failed,
/// and the database returns to its previous state). Once it is gone the transaction is
/// committed, whatever happens to the other blocks: they are left for the next deletion.
pub fn delete_journal(ctx: &DbContext) -> crate::error::Result<()> {
    let keys = BlockKeys::new(journal_prefix(&ctx.prefix));
    let state = ctx.journal_state();
    let mut doomed: Vec<String> = match state.size {
        Some(size) if !state.hot && !state.leftovers => (0..size.div_ceil(ctx.block_size))
            .map(|i| keys.key(i))
            .collect(),
        _ => block_on(list_blocks(&*ctx.store, &keys))?
            .into_iter()
            .map(|o| o.key)
            .collect(),
    };
    let header = keys.key(0);
    if let Some(pos) = doomed.iter().position(|k| *k == header) {
        doomed.remove(pos);
        if let Err(e) = block_on(ctx.store.delete(&header)) {
            // The delete may have landed with its answers lost: the store decides. Unless it is
            // known gone, our journal is marked hot: SQLite's next look rolls the transaction
            // back if the header is still there (as any other process would), and finds nothing
            // to roll back if it is not.
            let gone = block_on(ctx.store.head(&header));
            if matches!(gone, Ok(None)) {
                // The commit stands.
            } else {
                ctx.orphan_own_journal();
                return Err(match gone {
                    Ok(_) => e,
                    Err(_) => e
                        .with_kind(crate::error::ErrorKind::UnknownOutcome)
                        .context(
                        "the journal's delete (this layout's commit point) may or may not have \
                         landed: the next statement rolls the transaction back if it did not",
                    ),
                });
            }
        }
    }
    let rest = block_on(delete_keys(ctx.store.clone(), doomed, ctx.concurrency));
    ctx.update_journal(|j| {
        j.present = false;
        j.hot = false;
        j.orphaned = None;
        j.own_etag = None;
        j.size = Some(0);
        j.leftovers = rest.is_err();
    });
    Ok(())
}
