//! The SQLite VFS: SQLite's main database and rollback journal files of each open database go to
//! S3 through the block layer; temp files, sub-journals and super-journals go to SQLite's own
//! default VFS (local disk or memory). All `unsafe` code of the crate is in `ffi.rs`.

mod ffi;
pub mod file;
pub mod locks;
pub mod versioned;

use crate::error::{Error, Result};
use crate::layout::LayoutKind;
use crate::store::{DynStore, Stats};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub const VFS_NAME: &str = "s3vfs";

/// What the VFS needs to know about one open database. Registered under the file name that
/// the connection gives SQLite; SQLite derives the journal's name from it.
pub struct DbContext {
    pub store: DynStore,
    pub stats: Arc<Stats>,
    pub bucket: String,
    pub prefix: String,
    pub block_size: u64,
    pub cache_bytes: usize,
    pub concurrency: usize,
    /// Blocks prefetched at most ahead of a sequential reader.
    pub read_ahead: u64,
    /// What the database's buffered writes may hold in memory (`memoryLimit`), across its files.
    pub memory: Arc<crate::blocks::budget::MemoryBudget>,
    /// Versioned layout: blocks kept on local disk across processes.
    pub disk_cache: Option<Arc<crate::blocks::disk_cache::DiskCache>>,
    /// Incremented by the connection at every API call: freshness is checked at most once per
    /// call, however many lock cycles SQLite makes within it.
    pub call_epoch: AtomicU64,
    pub journal: Mutex<JournalState>,
    /// Versioned layout: a commit whose outcome is unknown (`ERR_COMMIT_UNKNOWN`). It is settled
    /// (its same bytes resent, or its root read back) before the next write, or by `db.settle()`.
    pub unknown_commit: Mutex<Option<crate::layout::versioned::commit::Prepared>>,
    /// Verdicts of commits of unknown outcome that later writes settled, oldest first, kept
    /// until `db.settle()` reads them (their callers may still be waiting to learn them).
    pub settled: Mutex<std::collections::VecDeque<versioned::Settled>>,
    /// The detailed error behind the last SQLite I/O error code we returned.
    last_error: Mutex<Option<(i32, Error)>>,
    pub layout: LayoutKind,
    pub versioned: VersionedOptions,
    pub compat: CompatOptions,
    /// Versioned layout: the newest version as the open-time LIST found it (`Some(None)`: none
    /// yet), used once by the first pin instead of a second LIST.
    detected_head: Mutex<Option<Option<u64>>>,
    /// Versioned layout: the version the connection has pinned (what `serialize` exports and
    /// `db.version` reports).
    pub pinned: Pinned,
}

/// The version a connection has pinned, shared between its thread and its JS object.
pub type Pinned = Arc<Mutex<Option<Arc<crate::layout::versioned::Snapshot>>>>;

/// Settings of the versioned layout.
#[derive(Debug, Clone, Default)]
pub struct VersionedOptions {
    /// Read-only calls skip the freshness check this long after the last one.
    pub max_staleness: std::time::Duration,
    /// Open read-only at this version (time travel).
    pub time_travel: Option<u64>,
    /// Skip the conditional-write probe: the user promises a single writer.
    pub single_writer: bool,
    /// How new blocks are stored; `None`: as the database records (its newest root).
    pub compression: Option<crate::layout::versioned::codec::Compression>,
    /// Encrypted databases: the keys (`options.encryption`).
    pub encryption: Option<std::sync::Arc<crate::layout::versioned::seal::Keyring>>,
}

/// Settings of the `sqlite-s3vfs` layout.
#[derive(Debug, Clone)]
pub struct CompatOptions {
    /// How long another process's journal must stay the same object, with no database block
    /// written meanwhile, before it is taken for a dead writer's and rolled back.
    pub hot_journal_age: std::time::Duration,
}

pub const DEFAULT_HOT_JOURNAL_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for CompatOptions {
    fn default() -> Self {
        CompatOptions {
            hot_journal_age: DEFAULT_HOT_JOURNAL_AGE,
        }
    }
}

/// What we know of the rollback journal's objects in the store.
#[derive(Debug, Default, Clone)]
pub struct JournalState {
    /// Objects of the journal may exist (so opening it must find its size).
    pub present: bool,
    /// Another process left a journal with a non-zero header that has not changed for a while:
    /// SQLite should roll it back.
    pub hot: bool,
    /// The journal's size, when known (saves a LIST when opening or deleting it).
    pub size: Option<u64>,
    /// The ETag of block 0 of the journal this connection last stored.
    pub own_etag: Option<String>,
    /// This connection's own commit failed after its journal was stored: that journal (known by
    /// the ETag of its block 0) is dead and hot at once, whatever its age. Any other journal,
    /// even one found at the same key later, is another writer's and follows the age rule.
    pub orphaned: Option<String>,
    /// A deletion removed the header but not every other object: the next one lists them all.
    pub leftovers: bool,
}

impl DbContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: DynStore,
        stats: Arc<Stats>,
        bucket: &str,
        prefix: &str,
        block_size: u64,
        cache_bytes: usize,
        concurrency: usize,
        read_ahead: u64,
        memory_limit: usize,
        disk_cache: Option<Arc<crate::blocks::disk_cache::DiskCache>>,
        layout: LayoutKind,
        versioned: VersionedOptions,
        compat: CompatOptions,
        detected_head: Option<Option<u64>>,
        pinned: Pinned,
    ) -> Self {
        let memory = Arc::new(crate::blocks::budget::MemoryBudget::new(
            memory_limit,
            stats.clone(),
        ));
        DbContext {
            store,
            stats,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            block_size,
            cache_bytes,
            concurrency,
            read_ahead,
            memory,
            disk_cache,
            call_epoch: AtomicU64::new(1),
            journal: Mutex::new(JournalState::default()),
            unknown_commit: Mutex::new(None),
            settled: Mutex::new(std::collections::VecDeque::new()),
            last_error: Mutex::new(None),
            layout,
            versioned,
            compat,
            detected_head: Mutex::new(detected_head),
            pinned,
        }
    }

    pub fn take_detected_head(&self) -> Option<Option<u64>> {
        self.detected_head.lock().unwrap().take()
    }

    pub fn begin_call(&self) {
        self.call_epoch.fetch_add(1, Ordering::Relaxed);
        self.last_error.lock().unwrap().take();
    }

    pub fn epoch(&self) -> u64 {
        self.call_epoch.load(Ordering::Relaxed)
    }

    /// Keeps the error behind the SQLite code `code` a VFS callback returned.
    pub fn set_error(&self, code: i32, e: Error) {
        *self.last_error.lock().unwrap() = Some((code, e));
    }

    /// The error behind an SQLite error of (extended) code `code`: only one recorded for the same
    /// primary code, so a detail SQLite swallowed (a recovered BUSY) never relabels a later,
    /// unrelated error.
    pub fn take_error(&self, code: i32) -> Option<Error> {
        let (kept, e) = self.last_error.lock().unwrap().take()?;
        (kept & 0xff == code & 0xff).then_some(e)
    }

    /// A lock callback succeeded: a lock error recorded earlier in this call was recovered from.
    pub fn clear_busy_error(&self) {
        let mut guard = self.last_error.lock().unwrap();
        if guard
            .as_ref()
            .is_some_and(|(c, _)| c & 0xff == rusqlite::ffi::SQLITE_BUSY)
        {
            *guard = None;
        }
    }

    /// Key of the in-process lock table and of the known versions: the store (endpoint and
    /// bucket) and the prefix.
    pub fn lock_key(&self) -> String {
        format!("{}\n{}", self.store.identity(), self.prefix)
    }

    pub fn journal_state(&self) -> JournalState {
        // Read by xAccess outside `catch_unwind`: no panic on a poisoned lock.
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn update_journal(&self, f: impl FnOnce(&mut JournalState)) {
        f(&mut self.journal.lock().unwrap())
    }

    /// Our commit failed after its journal was stored: that journal (known by its block 0's
    /// ETag) is dead and hot at once, so SQLite rolls back whatever of the commit landed.
    pub fn orphan_own_journal(&self) {
        self.update_journal(|j| {
            if j.present {
                j.orphaned = j.own_etag.clone();
                j.hot = j.orphaned.is_some();
            }
        });
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static REGISTRY: Mutex<Option<HashMap<String, Arc<DbContext>>>> = Mutex::new(None);

/// A database's registration: the file name to give SQLite. Unregisters when dropped.
pub struct Registration {
    pub file_name: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(map) = REGISTRY.lock().unwrap().as_mut() {
            map.remove(&self.file_name);
        }
    }
}

pub fn register_database(ctx: Arc<DbContext>) -> Result<Registration> {
    ensure_registered()?;
    // Unguessable: SQL text run on one database (`ATTACH 's3vfs-2.db'`, `VACUUM INTO`) must not
    // reach another open database of the process, with its bucket and credentials.
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let secret: String = crate::layout::versioned::new_attempt_id()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file_name = format!("s3vfs-{id}-{secret}.db");
    REGISTRY
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(file_name.clone(), ctx);
    Ok(Registration { file_name })
}

/// Which of our files a name SQLite passes us is.
pub enum Lookup {
    Db(Arc<DbContext>),
    Journal(Arc<DbContext>),
    Wal(Arc<DbContext>),
    NotOurs,
}

pub fn lookup(name: &str) -> Lookup {
    // Called outside `catch_unwind` (xAccess, xDelete, xFullPathname): never panics, even on a
    // poisoned lock (a panic there would unwind through `extern "C"` and abort the process).
    let guard = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(map) = guard.as_ref() else {
        return Lookup::NotOurs;
    };
    if let Some(ctx) = map.get(name) {
        return Lookup::Db(ctx.clone());
    }
    if let Some(ctx) = name.strip_suffix("-journal").and_then(|n| map.get(n)) {
        return Lookup::Journal(ctx.clone());
    }
    if let Some(ctx) = name.strip_suffix("-wal").and_then(|n| map.get(n)) {
        return Lookup::Wal(ctx.clone());
    }
    Lookup::NotOurs
}

fn ensure_registered() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(ffi::register)
        .clone()
        .map_err(|m| Error::internal(format!("cannot register the SQLite VFS: {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use rusqlite::ffi;

    fn context() -> DbContext {
        DbContext::new(
            Arc::new(MemoryStore::new()),
            Arc::new(Stats::default()),
            "b",
            "p",
            4096,
            1 << 20,
            4,
            0,
            1 << 20,
            None,
            LayoutKind::Versioned,
            VersionedOptions::default(),
            CompatOptions::default(),
            None,
            Pinned::default(),
        )
    }

    #[test]
    fn an_error_detail_labels_only_an_error_of_its_own_class() {
        // Review #18: a BUSY_SNAPSHOT that SQLite's busy handler recovered from must not relabel
        // a later, unrelated error of the same call.
        let ctx = context();
        ctx.set_error(
            ffi::SQLITE_BUSY_SNAPSHOT,
            Error::new("SQLITE_BUSY", "lost a race"),
        );
        assert!(ctx.take_error(ffi::SQLITE_CORRUPT).is_none());
        // The same class keeps its detail (an S3 error behind an I/O error).
        ctx.set_error(ffi::SQLITE_IOERR_READ, Error::new("AccessDenied", "denied"));
        assert_eq!(
            ctx.take_error(ffi::SQLITE_IOERR).unwrap().code,
            "AccessDenied"
        );
        // A lock error the next successful xLock recovered from is forgotten.
        ctx.set_error(
            ffi::SQLITE_BUSY_SNAPSHOT,
            Error::new("SQLITE_BUSY", "lost a race"),
        );
        ctx.clear_busy_error();
        assert!(ctx.take_error(ffi::SQLITE_BUSY).is_none());
        // Other details survive a successful lock.
        ctx.set_error(ffi::SQLITE_IOERR_READ, Error::new("AccessDenied", "denied"));
        ctx.clear_busy_error();
        assert!(ctx.take_error(ffi::SQLITE_IOERR_READ).is_some());
    }
}
