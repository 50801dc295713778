//! One OS thread per open database owns its SQLite connection. Async callers send commands over a
//! channel and await the reply; the thread runs them in order. SQLite's VFS callbacks therefore
//! run on this thread (never on a tokio worker) and block on S3 I/O there.

#[cfg(test)]
mod fault_matrix;
pub mod value;

use crate::blocks::disk_cache::DiskCache;
use crate::error::{codes, Error, Result};
use crate::layout::versioned::codec::Compression;
use crate::layout::versioned::Snapshot;
use crate::layout::{Found, LayoutKind};
use crate::runtime::block_on;
use crate::store::retry::{Policy, RetryingStore};
use crate::store::s3::{S3Config, S3Store};
use crate::store::{CountingStore, DynStore, Stats, StatsSnapshot};
use crate::vfs::{self, CompatOptions, DbContext, Pinned, Registration, VersionedOptions};
use rusqlite::OpenFlags;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
pub use value::{Params, Rows, RunResult, Value};

/// Everything needed to open a database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub bucket: String,
    pub prefix: String,
    pub store: StoreConfig,
    /// `None`: the layout's default (`LayoutKind::default_block_size`).
    pub block_size: Option<u64>,
    pub cache_bytes: usize,
    pub concurrency: usize,
    /// Blocks prefetched at most ahead of a sequential reader (0: no read-ahead).
    pub read_ahead: u64,
    /// Versioned layout: a directory that keeps blocks across processes, and its bound.
    pub cache_dir: Option<std::path::PathBuf>,
    pub cache_dir_bytes: u64,
    /// Bytes of a transaction's buffered writes (changed blocks, rollback journal) kept in
    /// memory; the rest goes to a temp file or, versioned layout, to the store early.
    pub memory_limit: usize,
    /// Where the request log goes (`options.logger`), if anywhere.
    pub log: Option<crate::store::log::RequestLog>,
    /// The layout of a new database (an existing one opens in the layout it holds).
    pub layout: Option<LayoutKind>,
    pub versioned: VersionedOptions,
    pub compat: CompatOptions,
}

pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
pub const DEFAULT_CONCURRENCY: usize = 32;
pub const DEFAULT_READ_AHEAD: u64 = 32;
pub const DEFAULT_CACHE_DIR_BYTES: u64 = 1 << 30;
pub const DEFAULT_MEMORY_LIMIT: usize = 64 << 20;

impl DatabaseConfig {
    pub fn validate(&self) -> Result<()> {
        crate::layout::validate_bucket(&self.bucket)?;
        crate::layout::validate_prefix(&self.prefix)?;
        if let Some(bs) = self.block_size.filter(|bs| *bs < 512 || *bs > (1 << 30)) {
            return Err(Error::invalid(format!(
                "blockSize must be between 512 bytes and 1 GiB, got {bs}"
            )));
        }
        if self.concurrency == 0 {
            return Err(Error::invalid("concurrency must be at least 1"));
        }
        Ok(())
    }

    /// The store as the layers above see it: counted, over retried and timed requests.
    pub async fn connect_store(&self, stats: Arc<Stats>) -> Result<DynStore> {
        let (store, policy): (DynStore, Policy) = match &self.store {
            StoreConfig::S3(s3) => (
                Arc::new(S3Store::connect(&self.bucket, s3).await?),
                s3.policy.clone(),
            ),
            StoreConfig::Dir(dir) => (
                Arc::new(crate::store::dir::DirStore::open(dir, &self.bucket)?),
                Policy::default(),
            ),
            StoreConfig::Given(store, policy) => (store.clone(), policy.clone()),
        };
        let retrying = RetryingStore::new(store, policy, stats.clone()).with_log(self.log.clone());
        Ok(Arc::new(CountingStore::new(Arc::new(retrying), stats)))
    }
}

/// Where a database's objects live.
#[derive(Clone)]
pub enum StoreConfig {
    S3(Box<S3Config>),
    /// A local directory (`options.store = { dir }`): buckets are folders, objects files.
    Dir(std::path::PathBuf),
    /// A store the caller built (Rust tests: the in-memory store, fault injection), with the
    /// retry policy to run it under.
    Given(DynStore, Policy),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::S3(Box::default())
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::S3(s3) => f.debug_tuple("S3").field(s3).finish(),
            StoreConfig::Dir(dir) => f.debug_tuple("Dir").field(dir).finish(),
            StoreConfig::Given(store, policy) => f
                .debug_tuple("Given")
                .field(&store.location())
                .field(policy)
                .finish(),
        }
    }
}

/// What `serialize` needs to read the database without the connection thread.
#[derive(Clone)]
pub struct StoreHandle {
    pub store: DynStore,
    pub prefix: String,
    pub block_size: u64,
    pub concurrency: usize,
    pub layout: LayoutKind,
    /// Versioned layout: the version to export (`None` before the first).
    pub snapshot: Option<Arc<Snapshot>>,
    /// Encrypted databases: the keys that open its objects.
    pub keys: Option<Arc<crate::layout::versioned::seal::Keyring>>,
}

/// Where a command's answer goes: a callback run on the connection thread (napi resolves its
/// promise from there, with no hop through the runtime), or a oneshot for async callers. A reply
/// dropped unanswered (the thread ended) answers that the database is closed.
pub struct Reply<T>(Option<Box<dyn FnOnce(Result<T>) + Send>>);

impl<T> Reply<T> {
    pub fn new(done: impl FnOnce(Result<T>) + Send + 'static) -> Self {
        Reply(Some(Box::new(done)))
    }

    pub fn send(mut self, answer: Result<T>) {
        if let Some(done) = self.0.take() {
            done(answer)
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(Error::new(
                codes::CLOSED,
                "the database connection ended",
            )))
        }
    }
}

pub enum Command {
    Open(Reply<()>),
    Exec(String, Reply<()>),
    Run(String, Params, Reply<RunResult>),
    Query {
        sql: String,
        params: Params,
        first_only: bool,
        reply: Reply<Rows>,
    },
    Prepare(String, Reply<Vec<String>>),
    IterStart {
        id: u64,
        sql: String,
        params: Params,
        reply: Reply<Vec<String>>,
    },
    IterNext {
        id: u64,
        max: usize,
        reply: Reply<Rows>,
    },
    IterClose(u64, Reply<()>),
    Store(Reply<StoreHandle>),
    /// Decides this connection's commit of unknown outcome, if any.
    Settle(Reply<vfs::versioned::Settled>),
    Close(Reply<()>),
}

/// The handle async callers hold.
pub struct Connection {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    stats: Arc<Stats>,
    pinned: Pinned,
    opened: Arc<Mutex<Option<Opened>>>,
    /// Interrupts the statement the connection thread runs (set once the database is open).
    interrupt: Interrupt,
    next_iterator: AtomicU64,
    place: String,
}

/// What the connection thread learnt when it opened the database.
#[derive(Clone, Copy)]
struct Opened {
    layout: LayoutKind,
    /// The block size it was opened with (a versioned database's own, once pinned, wins).
    block_size: u64,
}

/// SQLite's interrupt handle of a connection, shared with the thread that opens it.
type Interrupt = Arc<Mutex<Option<rusqlite::InterruptHandle>>>;

impl Connection {
    pub fn start(config: DatabaseConfig) -> Result<Connection> {
        config.validate()?;
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let place = format!("s3://{}/{}", config.bucket, config.prefix);
        let thread_stats = stats.clone();
        let pinned = Pinned::default();
        let opened = Arc::new(Mutex::new(None));
        let interrupt: Interrupt = Arc::default();
        let shared = (pinned.clone(), opened.clone(), interrupt.clone());
        std::thread::Builder::new()
            .name("s3vfs-connection".into())
            // Open iterators nest frames on this thread (bounded by MAX_OPEN_ITERATORS); SQLite
            // itself needs a few hundred KiB at most. Only the pages touched are committed.
            .stack_size(CONNECTION_STACK_BYTES)
            .spawn(move || Worker::new(config, thread_stats, shared).serve(rx))
            .map_err(|e| Error::internal(format!("cannot start the connection thread: {e}")))?;
        Ok(Connection {
            tx: Mutex::new(Some(tx)),
            stats,
            pinned,
            opened,
            interrupt,
            next_iterator: AtomicU64::new(1),
            place,
        })
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Makes the statement running now (if any) fail with `SQLITE_INTERRUPT`; the connection
    /// stays usable. A no-op before the database is open or between statements.
    pub fn interrupt(&self) {
        if let Some(handle) = self.interrupt.lock().unwrap().as_ref() {
            handle.interrupt();
        }
    }

    /// The version the connection has pinned (versioned layout; 0 before the first read).
    pub fn version(&self) -> u64 {
        let pinned = self.pinned.lock().unwrap();
        pinned.as_ref().map(|s| s.version()).unwrap_or(0)
    }

    /// The layout, once the database is open.
    pub fn layout(&self) -> Option<LayoutKind> {
        self.opened.lock().unwrap().map(|o| o.layout)
    }

    /// The block size, once the database is open: a versioned database's own (from its root),
    /// else the one the options gave (the `sqlite-s3vfs` layout records none).
    pub fn block_size(&self) -> Option<u64> {
        let pinned = self.pinned.lock().unwrap();
        match pinned.as_ref() {
            Some(s) => Some(s.root.block_size),
            None => self.opened.lock().unwrap().map(|o| o.block_size),
        }
    }

    pub fn next_iterator_id(&self) -> u64 {
        self.next_iterator.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a command and awaits its reply.
    pub async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.submit(make, move |r| {
            let _ = reply.send(r);
        })?;
        answer.await.map_err(|_| self.closed())?
    }

    /// Sends a command whose answer `done` receives on the connection thread.
    /// `done` is always called: with the answer, or with `ERR_DATABASE_CLOSED` when the
    /// connection is closed or its thread has ended (a JS promise waiting on it must settle, or
    /// it would hold the event loop open forever).
    pub fn submit<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) -> Result<()> {
        let closed = self.closed();
        let reply = Reply::new(done);
        let guard = self.tx.lock().unwrap();
        match guard.as_ref() {
            Some(tx) => {
                if let Err(unsent) = tx.send(make(reply)) {
                    drop(guard);
                    fail(unsent.0, closed);
                }
            }
            None => {
                drop(guard);
                reply.send(Err(closed));
            }
        }
        Ok(())
    }

    pub async fn close(&self) -> Result<()> {
        let tx = self.tx.lock().unwrap().take();
        let Some(tx) = tx else {
            return Ok(());
        };
        let (reply, answer) = oneshot::channel();
        let reply = Reply::new(move |r| {
            let _ = reply.send(r);
        });
        if tx.send(Command::Close(reply)).is_err() {
            return Ok(());
        }
        answer.await.unwrap_or(Ok(()))
    }

    fn closed(&self) -> Error {
        Error::new(
            codes::CLOSED,
            format!("the database {} is closed", self.place),
        )
    }
}

/// Iterators open at once on one connection. Each one holds a frame on the connection thread
/// (and its read transaction): past this, `iterate` fails with a clear error instead of
/// exhausting the thread's stack.
pub const MAX_OPEN_ITERATORS: usize = 1024;

/// The connection thread's stack: room for `MAX_OPEN_ITERATORS` nested iterator frames.
const CONNECTION_STACK_BYTES: usize = 64 << 20;

/// How long the connection thread keeps polling for the next command before it sleeps: a caller
/// that awaits one query and sends the next finds the thread awake (a sleeping thread's wake-up
/// costs tens of microseconds, about the price of a cached point query).
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(200);

fn next_command(rx: &mpsc::Receiver<Command>) -> std::result::Result<Command, mpsc::RecvError> {
    let start = std::time::Instant::now();
    while start.elapsed() < SPIN_BEFORE_SLEEP {
        match rx.try_recv() {
            Ok(cmd) => return Ok(cmd),
            Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
            Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    rx.recv()
}

/// An open database on the connection thread. Field order matters: the SQLite connection
/// closes (flushing its files) before the VFS registration goes.
struct OpenDb {
    conn: rusqlite::Connection,
    ctx: Arc<DbContext>,
    _registration: Registration,
}

struct Worker {
    config: DatabaseConfig,
    stats: Arc<Stats>,
    pinned: Pinned,
    opened: Arc<Mutex<Option<Opened>>>,
    interrupt: Interrupt,
    db: Option<OpenDb>,
}

enum Exit {
    /// The iterator's frame ended; keep serving.
    Continue,
    Close(Reply<()>),
    Disconnected,
}

impl Worker {
    fn new(
        config: DatabaseConfig,
        stats: Arc<Stats>,
        shared: (Pinned, Arc<Mutex<Option<Opened>>>, Interrupt),
    ) -> Self {
        Worker {
            config,
            stats,
            pinned: shared.0,
            opened: shared.1,
            interrupt: shared.2,
            db: None,
        }
    }

    fn open(&mut self) -> Result<()> {
        if self.db.is_some() {
            return Ok(());
        }
        let c = &self.config;
        if let Some(keys) = &c.versioned.encryption {
            // A key the provider lacked at a failed open may be there now.
            keys.forget_unknown();
        }
        let store = block_on(c.connect_store(self.stats.clone()))?;
        // One LIST tells the layout, and in the versioned one the newest version.
        let (layout, head) = match block_on(crate::layout::detect(&*store, &c.prefix))? {
            Found::Nothing => {
                let layout = c.layout.unwrap_or(LayoutKind::Versioned);
                (layout, (layout == LayoutKind::Versioned).then_some(None))
            }
            Found::Compat => (LayoutKind::Compat, None),
            Found::Versioned(head) => (LayoutKind::Versioned, Some(head)),
        };
        if layout != LayoutKind::Versioned
            && (c.versioned.encryption.is_some()
                || c.versioned
                    .compression
                    .is_some_and(|z| z != Compression::None))
        {
            return Err(Error::new(
                codes::UNSUPPORTED,
                format!(
                    "s3://{}/{} is in the sqlite-s3vfs layout, whose objects the Python library \
                     reads as they are: encryption and compression need the versioned layout",
                    c.bucket, c.prefix
                ),
            ));
        }
        if c.versioned.time_travel.is_some() && layout != LayoutKind::Versioned {
            return Err(Error::invalid(format!(
                "s3://{}/{} is in the sqlite-s3vfs layout, which keeps no versions: the version \
                 option needs the versioned layout",
                c.bucket, c.prefix
            )));
        }
        let block_size = c.block_size.unwrap_or(layout.default_block_size());
        let ctx = Arc::new(DbContext::new(
            store,
            self.stats.clone(),
            &c.bucket,
            &c.prefix,
            block_size,
            c.cache_bytes,
            c.concurrency,
            c.read_ahead,
            c.memory_limit,
            c.cache_dir
                .as_ref()
                .map(|dir| DiskCache::shared(dir, c.cache_dir_bytes)),
            layout,
            c.versioned.clone(),
            c.compat.clone(),
            head,
            self.pinned.clone(),
        ));
        let registration = vfs::register_database(ctx.clone())?;
        ctx.begin_call();
        let flags = if c.versioned.time_travel.is_some() {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = rusqlite::Connection::open_with_flags_and_vfs(
            &registration.file_name,
            flags,
            vfs::VFS_NAME,
        )
        .map_err(|e| sql_error(&ctx, e))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sql_error(&ctx, e))?;
        // Reads page 1: bucket, credential and format errors surface now, not at the first query.
        let opening = |e: Error| e.context(format!("opening s3://{}/{}", c.bucket, c.prefix));
        conn.query_row("PRAGMA schema_version", [], |_| Ok(()))
            .map_err(|e| sql_error(&ctx, e))
            .map_err(opening)?;
        // A key provider that cannot give the current key fails the open, not the first write
        // (an old version, read-only, seals nothing).
        if let Some(keys) = c
            .versioned
            .encryption
            .as_ref()
            .filter(|_| c.versioned.time_travel.is_none())
        {
            keys.ready().map_err(opening)?;
        }
        *self.interrupt.lock().unwrap() = Some(conn.get_interrupt_handle());
        // Only a database that opened has a layout and a block size to report.
        *self.opened.lock().unwrap() = Some(Opened { layout, block_size });
        self.db = Some(OpenDb {
            conn,
            ctx,
            _registration: registration,
        });
        Ok(())
    }

    fn serve(mut self, rx: mpsc::Receiver<Command>) {
        while let Ok(cmd) = next_command(&rx) {
            if let Command::Close(reply) = cmd {
                reply.send(Ok(()));
                return;
            }
            if let Err(e) = self.open() {
                fail(cmd, e);
                continue;
            }
            let Some(db) = self.db.as_ref() else { continue };
            let session = Session {
                db,
                rx: &rx,
                closing: RefCell::new(HashSet::new()),
                open_iterators: std::cell::Cell::new(0),
            };
            match session.dispatch(cmd) {
                Exit::Continue => {}
                Exit::Close(reply) => {
                    drop(session);
                    // Dropping the connection flushes and closes its files.
                    self.db = None;
                    reply.send(Ok(()));
                    return;
                }
                Exit::Disconnected => return,
            }
        }
    }
}

/// Answers a command with an error.
fn fail(cmd: Command, e: Error) {
    match cmd {
        Command::Open(r) | Command::Exec(_, r) | Command::IterClose(_, r) | Command::Close(r) => {
            r.send(Err(e));
        }
        Command::Run(_, _, r) => {
            r.send(Err(e));
        }
        Command::Query { reply, .. } | Command::IterNext { reply, .. } => {
            reply.send(Err(e));
        }
        Command::Prepare(_, r) | Command::IterStart { reply: r, .. } => {
            r.send(Err(e));
        }
        Command::Store(r) => {
            r.send(Err(e));
        }
        Command::Settle(r) => {
            r.send(Err(e));
        }
    }
}

/// Converts an SQLite error, preferring the error behind a code our VFS returned (an S3 error, a
/// lost commit race, ...). Every kind of `SQLITE_BUSY` is reported as `SQLITE_BUSY`: the
/// transaction can be run again.
fn sql_error(ctx: &DbContext, e: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    let Some(extended) = (match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
        _ => None,
    }) else {
        return Error::from(e);
    };
    let mut err = Error::from(e);
    let primary = extended & 0xff;
    // The primary codes our VFS callbacks return with an error recorded behind them.
    const FROM_VFS: [i32; 7] = [
        ffi::SQLITE_IOERR,
        ffi::SQLITE_CANTOPEN,
        ffi::SQLITE_FULL,
        ffi::SQLITE_BUSY,
        ffi::SQLITE_PROTOCOL,
        ffi::SQLITE_READONLY,
        ffi::SQLITE_CORRUPT,
    ];
    if primary == ffi::SQLITE_READONLY {
        if let Some(v) = ctx.versioned.time_travel {
            let e = vfs::versioned::read_only_version(v);
            return Error::new(e.code, format!("{} [{}]", e.message, err.code));
        }
    }
    if primary == ffi::SQLITE_BUSY && extended != ffi::SQLITE_BUSY {
        err.message = format!("{} [{}]", err.message, err.code);
        err.code = "SQLITE_BUSY".into();
    }
    let err = match ctx.take_error(extended) {
        Some(detail) if FROM_VFS.contains(&primary) => {
            Error::new(detail.code, format!("{} [{}]", detail.message, err.code))
                .with_kind(detail.kind)
        }
        _ => err,
    };
    // Whatever the VFS recorded behind it, a BUSY means: another writer got there first.
    if primary == ffi::SQLITE_BUSY {
        return err.with_kind(crate::error::ErrorKind::Conflict);
    }
    err
}

struct Session<'a> {
    db: &'a OpenDb,
    rx: &'a mpsc::Receiver<Command>,
    /// Iterators closed while a more recent one was active: their frames end when resumed.
    closing: RefCell<HashSet<u64>>,
    /// Iterator frames open on this thread now.
    open_iterators: std::cell::Cell<usize>,
}

impl Session<'_> {
    fn err(&self, e: rusqlite::Error) -> Error {
        sql_error(&self.db.ctx, e)
    }

    fn dispatch(&self, cmd: Command) -> Exit {
        self.db.ctx.begin_call();
        match cmd {
            Command::Open(r) => {
                r.send(Ok(()));
            }
            Command::Exec(sql, r) => {
                r.send(self.db.conn.execute_batch(&sql).map_err(|e| self.err(e)));
            }
            Command::Run(sql, params, r) => {
                r.send(self.run(&sql, &params));
            }
            Command::Query {
                sql,
                params,
                first_only,
                reply,
            } => {
                reply.send(self.query(&sql, &params, first_only));
            }
            Command::Prepare(sql, r) => {
                let columns = self
                    .db
                    .conn
                    .prepare_cached(&sql)
                    .map(|s| s.column_names().map(|c| c.to_string()).collect())
                    .map_err(|e| self.err(e));
                r.send(columns);
            }
            Command::IterStart {
                id,
                sql,
                params,
                reply,
            } => return self.iterate(id, &sql, &params, reply),
            Command::IterNext { id, reply, .. } => {
                reply.send(Err(Error::new(
                    codes::ITERATOR_ORDER,
                    format!("iterator {id} is finished, closed, or not the innermost open one"),
                )));
            }
            Command::IterClose(id, r) => {
                self.closing.borrow_mut().insert(id);
                r.send(Ok(()));
            }
            Command::Store(r) => {
                r.send(self.store_handle());
            }
            Command::Settle(r) => {
                r.send(vfs::versioned::settle(&self.db.ctx));
            }
            Command::Close(r) => return Exit::Close(r),
        }
        Exit::Continue
    }

    /// What `serialize` reads: in the versioned layout, the version a fresh read transaction
    /// pins (checked against the store like any read).
    fn store_handle(&self) -> Result<StoreHandle> {
        let c = &self.db.ctx;
        let snapshot = if c.layout == LayoutKind::Versioned {
            self.db
                .conn
                .query_row("PRAGMA schema_version", [], |_| Ok(()))
                .map_err(|e| self.err(e))?;
            c.pinned.lock().unwrap().clone()
        } else {
            None
        };
        Ok(StoreHandle {
            store: c.store.clone(),
            prefix: c.prefix.clone(),
            block_size: c.block_size,
            concurrency: c.concurrency,
            layout: c.layout,
            snapshot,
            keys: c.versioned.encryption.clone(),
        })
    }

    /// Appends the `n` columns of `row` to a row-major result.
    fn push_row(&self, row: &rusqlite::Row<'_>, n: usize, out: &mut Vec<Value>) -> Result<()> {
        for i in 0..n {
            out.push(row.get_ref(i).map_err(|e| self.err(e))?.into());
        }
        Ok(())
    }

    fn run(&self, sql: &str, params: &Params) -> Result<RunResult> {
        let conn = &self.db.conn;
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        params.bind(&mut stmt)?;
        let mut rows = stmt.raw_query();
        while rows.next().map_err(|e| self.err(e))?.is_some() {}
        Ok(RunResult {
            changes: conn.changes(),
            last_insert_rowid: conn.last_insert_rowid(),
        })
    }

    fn query(&self, sql: &str, params: &Params, first_only: bool) -> Result<Rows> {
        let mut stmt = self.db.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        params.bind(&mut stmt)?;
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut out = Rows {
            columns,
            values: Vec::new(),
            done: true,
        };
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            self.push_row(row, n, &mut out.values)?;
            if first_only {
                break;
            }
        }
        Ok(out)
    }

    /// Runs an iterator: its statement lives in this stack frame, which serves every other
    /// command until the iterator is finished or closed (iterators nest).
    fn iterate(&self, id: u64, sql: &str, params: &Params, reply: Reply<Vec<String>>) -> Exit {
        let open = self.open_iterators.get();
        if open >= MAX_OPEN_ITERATORS {
            reply.send(Err(Error::new(
                codes::TOO_MANY_ITERATORS,
                format!(
                    "{open} iterators are open on this database: finish them, break out of their \
                     loops or call return() (an unfinished iterator holds its read transaction)"
                ),
            )));
            return Exit::Continue;
        }
        self.open_iterators.set(open + 1);
        let exit = self.iterate_open(id, sql, params, reply);
        self.open_iterators.set(open);
        exit
    }

    fn iterate_open(&self, id: u64, sql: &str, params: &Params, reply: Reply<Vec<String>>) -> Exit {
        let mut stmt = match self.db.conn.prepare_cached(sql) {
            Ok(s) => s,
            Err(e) => {
                reply.send(Err(self.err(e)));
                return Exit::Continue;
            }
        };
        if let Err(e) = params.bind(&mut stmt) {
            reply.send(Err(e));
            return Exit::Continue;
        }
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        reply.send(Ok(columns.clone()));
        let mut rows = stmt.raw_query();
        loop {
            if self.closing.borrow_mut().remove(&id) {
                return Exit::Continue;
            }
            let Ok(cmd) = next_command(self.rx) else {
                return Exit::Disconnected;
            };
            match cmd {
                Command::IterNext { id: i, max, reply } if i == id => {
                    self.db.ctx.begin_call();
                    let mut batch = Rows {
                        columns: columns.clone(),
                        values: Vec::new(),
                        done: false,
                    };
                    let result = (|| {
                        for _ in 0..max.max(1) {
                            match rows.next().map_err(|e| self.err(e))? {
                                Some(row) => {
                                    self.push_row(row, n, &mut batch.values)?;
                                }
                                None => {
                                    batch.done = true;
                                    break;
                                }
                            }
                        }
                        Ok(())
                    })();
                    let finished = batch.done || result.is_err();
                    reply.send(result.map(|_| batch));
                    if finished {
                        return Exit::Continue;
                    }
                }
                Command::IterClose(i, r) if i == id => {
                    r.send(Ok(()));
                    return Exit::Continue;
                }
                other => match self.dispatch(other) {
                    Exit::Continue => {}
                    exit => return exit,
                },
            }
        }
    }
}
