//! Every fault at every request index: each operation (open and read, commit and bulk commit in
//! both layouts, GC, serialize, deserialize) is first run clean to count its requests; then, for
//! each index n and each fault, it runs again on a fresh store with the nth request faulted.
//! After each run: the operation succeeded and its effect is there exactly once, or it failed
//! with a coded error and the database is at its previous state; `integrity_check` is ok; the
//! same connection keeps working once the store heals; and a fresh one agrees. The `sealed_*`
//! rows run the versioned layout encrypted and compressed (every root, segment and block sealed;
//! a commit's outcome decided from an authenticated root).

use super::{Command, Connection, DatabaseConfig, Params, StoreConfig, Value};
use crate::error::{Error, Result};
use crate::layout::versioned::codec::Compression;
use crate::layout::versioned::gc::{collect, GcOptions};
use crate::layout::versioned::seal::Keyring;
use crate::layout::versioned::Names;
use crate::layout::LayoutKind;
use crate::runtime::block_on;
use crate::store::faults::{s3_error, Action, FaultyStore, Rule};
use crate::store::retry::{Policy, RetryPolicy, Timeouts};
use crate::store::{DynStore, Stats};
use crate::streams::deserialize::{DeserializeOptions, Deserializer};
use crate::streams::serialize::Serializer;
use crate::vfs::versioned::Settled;
use crate::vfs::{CompatOptions, VersionedOptions};
use std::sync::Arc;
use std::time::Duration;

const ROWS: i64 = 60;

std::thread_local! {
    /// This test thread's versioned databases are encrypted and compressed.
    static SEALED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The keyring of a sealed run (none otherwise).
fn keys() -> Option<Arc<Keyring>> {
    SEALED
        .with(|s| s.get())
        .then(|| Arc::new(Keyring::new("k", &[9; 32], &[]).unwrap()))
}

fn policy() -> Policy {
    Policy {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            throttle_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(5),
            budget: Duration::from_millis(400),
        },
        timeouts: Timeouts {
            first_byte: Duration::from_millis(100),
            body_stall: Duration::from_millis(50),
            list: Duration::from_millis(100),
            rewrite: Duration::from_millis(150),
            min_upload_rate: 1 << 30,
            ..Timeouts::default()
        },
    }
}

fn config(store: &Arc<FaultyStore>, prefix: &str, layout: LayoutKind) -> DatabaseConfig {
    DatabaseConfig {
        bucket: "matrix".into(),
        prefix: prefix.into(),
        store: StoreConfig::Given(store.clone(), policy()),
        block_size: Some(4096),
        cache_bytes: 1 << 20,
        concurrency: 4,
        read_ahead: 0,
        cache_dir: None,
        cache_dir_bytes: 0,
        memory_limit: crate::connection::DEFAULT_MEMORY_LIMIT,
        log: None,
        layout: Some(layout),
        versioned: VersionedOptions {
            encryption: keys(),
            compression: keys().map(|_| Compression::Zstd { level: 3 }),
            ..VersionedOptions::default()
        },
        compat: CompatOptions {
            hot_journal_age: Duration::from_secs(60),
        },
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    block_on(conn.call(|r| Command::Exec(sql.to_string(), r)))
}

fn one(conn: &Connection, sql: &str) -> Result<Value> {
    let rows = block_on(conn.call(|reply| Command::Query {
        sql: sql.to_string(),
        params: Params::None,
        first_only: true,
        reply,
    }))?;
    rows.values
        .into_iter()
        .next()
        .ok_or_else(|| Error::internal("no row"))
}

fn count(conn: &Connection) -> Result<i64> {
    match one(conn, "SELECT count(*) FROM t")? {
        Value::Integer(n) => Ok(n),
        v => Err(Error::internal(format!("count: {v:?}"))),
    }
}

fn integrity(conn: &Connection) -> Result<()> {
    match one(conn, "PRAGMA integrity_check")? {
        Value::Text(t) if t == "ok" => Ok(()),
        v => Err(Error::internal(format!("integrity_check: {v:?}"))),
    }
}

fn close(conn: Connection) {
    let _ = block_on(conn.close());
}

fn export(conn: &Connection) -> Result<Vec<u8>> {
    let handle = block_on(conn.call(Command::Store))?;
    let mut s = Serializer::new(handle);
    let mut out = Vec::new();
    block_on(async {
        while let Some(chunk) = s.next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok::<_, Error>(())
    })?;
    Ok(out)
}

/// What an operation leaves behind, to check against.
struct Env {
    store: Arc<FaultyStore>,
    layout: LayoutKind,
    /// Set up by `prepare`: a connection that has read (and, for writes, written) already.
    conn: Option<Connection>,
    /// A clean export of the database, for serialize and deserialize.
    file: Vec<u8>,
    memory_limit: usize,
}

impl Env {
    fn open(&self, prefix: &str) -> Result<Connection> {
        let mut c = config(&self.store, prefix, self.layout);
        c.memory_limit = self.memory_limit;
        Connection::start(c)
    }
}

#[derive(Clone, Copy)]
enum Op {
    OpenRead,
    Commit,
    BulkCommit,
    /// A bulk commit whose pages leave memory before the commit: SQLite's page cache spills
    /// them to the file, and past `memoryLimit` (3 blocks) the buffer moves them on (to the
    /// store early, or to a temp file).
    SpilledCommit,
    Gc,
    Serialize,
    Deserialize,
}

impl Op {
    /// Rows the operation adds when it succeeds.
    fn adds(self) -> i64 {
        match self {
            Op::Commit => 1,
            Op::BulkCommit | Op::SpilledCommit => 30,
            _ => 0,
        }
    }

    fn prepare(self, env: &mut Env) -> Result<()> {
        let seed = env.open("db")?;
        exec(
            &seed,
            &format!(
                "PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
                 WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ROWS})
                 INSERT INTO t(v) SELECT randomblob(1000) FROM s;"
            ),
        )?;
        // A few versions for GC to prune.
        for _ in 0..3 {
            exec(&seed, "UPDATE t SET v = randomblob(1000) WHERE id = 1")?;
        }
        env.file = export(&seed)?;
        close(seed);
        if matches!(self, Op::SpilledCommit) {
            env.memory_limit = 3 * 4096;
        }
        if matches!(
            self,
            Op::Commit | Op::BulkCommit | Op::SpilledCommit | Op::Serialize
        ) {
            let conn = env.open("db")?;
            if matches!(self, Op::SpilledCommit) {
                exec(&conn, "PRAGMA cache_size = 4")?;
            }
            if matches!(self, Op::Serialize) {
                count(&conn)?;
            } else {
                // One write first: the conditional-write probe is behind us.
                exec(&conn, "UPDATE t SET v = randomblob(1000) WHERE id = 2")?;
            }
            env.conn = Some(conn);
        }
        Ok(())
    }

    fn run(self, env: &mut Env) -> Result<()> {
        match self {
            Op::OpenRead => {
                let conn = env.open("db")?;
                let read = count(&conn).and_then(|_| one(&conn, "SELECT v FROM t WHERE id = 50"));
                env.conn = Some(conn);
                read.map(|_| ())
            }
            Op::Commit => exec(
                env.conn.as_ref().unwrap(),
                "INSERT INTO t(v) VALUES (randomblob(1000))",
            ),
            Op::BulkCommit | Op::SpilledCommit => exec(
                env.conn.as_ref().unwrap(),
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 30)
                 INSERT INTO t(v) SELECT randomblob(1000) FROM s",
            ),
            Op::Gc => {
                let store: DynStore = block_on(
                    config(&env.store, "db", env.layout).connect_store(Arc::new(Stats::default())),
                )?;
                let opts = GcOptions {
                    keep_versions: 1,
                    grace_ms: 0,
                    concurrency: 4,
                    allow_short_grace: true,
                    dry_run: false,
                    progress: None,
                };
                block_on(collect(store, &Names::with_keys("db", keys()), opts)).map(|_| ())
            }
            Op::Serialize => {
                let got = export(env.conn.as_ref().unwrap())?;
                assert!(got == env.file, "the export differs from the database");
                Ok(())
            }
            Op::Deserialize => {
                let store: DynStore = block_on(
                    config(&env.store, "copy", env.layout)
                        .connect_store(Arc::new(Stats::default())),
                )?;
                let opts = DeserializeOptions {
                    prefix: "copy".into(),
                    block_size: Some(4096),
                    concurrency: 4,
                    overwrite: false,
                    layout: Some(env.layout),
                    compression: keys()
                        .map_or(Compression::None, |_| Compression::Zstd { level: 3 }),
                    keys: keys(),
                };
                let file = env.file.clone();
                block_on(async move {
                    let mut d = Deserializer::start(store, opts).await?;
                    let written = async {
                        for chunk in file.chunks(10_000) {
                            d.write(chunk).await?;
                        }
                        d.finish().await
                    }
                    .await;
                    if written.is_err() {
                        d.abort().await;
                    }
                    written.map(|_| ())
                })
            }
        }
    }
}

/// How a faulted operation ended.
#[derive(Default, Debug)]
struct Tally {
    succeeded: usize,
    failed: usize,
    unknown: usize,
}

/// Runs `op` with `rule`, heals, and checks the invariants. `label` names the run in failures.
/// Returns the requests the operation sent.
fn scenario(
    op: Op,
    layout: LayoutKind,
    rule: Option<Rule>,
    label: &str,
    tally: &mut Tally,
) -> usize {
    let store = Arc::new(FaultyStore::new());
    let mut env = Env {
        store: store.clone(),
        layout,
        conn: None,
        file: Vec::new(),
        memory_limit: crate::connection::DEFAULT_MEMORY_LIMIT,
    };
    op.prepare(&mut env)
        .unwrap_or_else(|e| panic!("{label}: setup: {e}"));
    let before = {
        let c = env.open("db").unwrap();
        let n = count(&c).unwrap();
        close(c);
        n
    };
    store.take_log();
    let faulted = rule.is_some();
    if let Some(rule) = rule {
        store.add(rule);
    }
    let result = op.run(&mut env);
    assert!(
        !faulted || store.fired() > 0,
        "{label}: the fault reached no request: the run tests nothing"
    );
    let requests = store.take_log().len();
    store.heal();
    let mut added = if result.is_ok() { op.adds() } else { 0 };
    match &result {
        Ok(()) => tally.succeeded += 1,
        Err(e) if e.is_unknown_outcome() => tally.unknown += 1,
        Err(_) => tally.failed += 1,
    }
    if let Err(e) = &result {
        assert!(!e.code.is_empty(), "{label}: an error without a code");
        // A commit's connection settles it; an import's outcome is checked on the copy below.
        if let (true, Some(conn)) = (e.is_unknown_outcome(), env.conn.as_ref()) {
            let verdict = block_on(conn.call(Command::Settle))
                .unwrap_or_else(|e| panic!("{label}: settle: {e}"));
            if matches!(verdict, Settled::Committed(_)) {
                added = op.adds();
            }
        }
    }
    // The same connection keeps working, and sees exactly the expected rows.
    if let Some(conn) = env.conn.take() {
        let n = count(&conn).unwrap_or_else(|e| panic!("{label} ({result:?}): count: {e}"));
        // The sqlite-s3vfs layout has no settle: its unknown outcome is whichever it was.
        if result.as_ref().is_err_and(|e| e.is_unknown_outcome())
            && layout == LayoutKind::Compat
            && n == before + op.adds()
        {
            added = op.adds();
        }
        assert_eq!(n, before + added, "{label}: outcome {result:?}");
        exec(&conn, "INSERT INTO t(v) VALUES (randomblob(1000))")
            .unwrap_or_else(|e| panic!("{label} ({result:?}): a write after healing: {e}"));
        added += 1;
        integrity(&conn).unwrap_or_else(|e| panic!("{label}: {e}"));
        close(conn);
    }
    if label.contains(" late ") {
        // The late write has landed by now.
        std::thread::sleep(Duration::from_millis(350));
    }
    let fresh = env.open("db").unwrap();
    let n = count(&fresh).unwrap_or_else(|e| panic!("{label} ({result:?}): fresh count: {e}"));
    assert_eq!(n, before + added, "{label}: outcome {result:?}");
    integrity(&fresh).unwrap_or_else(|e| panic!("{label}: {e}"));
    close(fresh);
    if matches!(op, Op::Deserialize) {
        // An import that failed left no database, or (its outcome unknown) a whole one.
        let copy = env.open("copy").unwrap();
        match count(&copy) {
            Ok(n) => assert_eq!(n, before, "{label}: a partial import ({result:?})"),
            Err(e) => assert!(result.is_err(), "{label}: the import succeeded but: {e}"),
        }
        close(copy);
    }
    requests
}

fn faults(n: usize, layout: LayoutKind) -> Vec<(&'static str, Rule)> {
    let mut faults = vec![
        ("500", Rule::nth(n, Action::Fail(s3_error("InternalError")))),
        ("SlowDown", Rule::nth(n, Action::Fail(s3_error("SlowDown")))),
        (
            "lands, answer lost",
            Rule::nth(n, Action::LandThenFail(s3_error("ECONNRESET"))),
        ),
        ("stall", Rule::nth(n, Action::Stall)),
        ("403", Rule::nth(n, Action::Fail(s3_error("AccessDenied")))),
        // Every attempt of the request lands, and every answer is lost.
        (
            "lands, every answer lost",
            Rule {
                count: 3,
                ..Rule::nth(n, Action::LandThenFail(s3_error("ECONNRESET")))
            },
        ),
        (
            "outage",
            Rule::from(n, Action::Fail(s3_error("InternalError"))),
        ),
    ];
    // A write answered too late: the caller gave up (and resent), and the server applies the
    // first one 300 ms later, after what followed. The versioned layout's keys are never written
    // twice, so it must not matter; the sqlite-s3vfs layout rewrites its keys and relies on
    // `rewriteMs` being longer than any such delay instead (not modelled here).
    if layout == LayoutKind::Versioned {
        faults.push((
            "lands 300 ms late",
            Rule::nth(
                n,
                Action::LandLate(s3_error("ETIMEDOUT"), Duration::from_millis(300)),
            ),
        ));
    }
    faults
}

fn every_request_index(op: Op, layout: LayoutKind) {
    let name = format!("{:?}", layout);
    let mut tally = Tally::default();
    let requests = scenario(op, layout, None, &format!("{name}: clean run"), &mut tally);
    assert!(requests > 0, "{name}: the operation sent no request");
    for n in 0..requests {
        for (fault, rule) in faults(n, layout) {
            let label = format!("{name}: {fault} at request {n} of {requests}");
            scenario(op, layout, Some(rule), &label, &mut tally);
        }
    }
    // Shown with --nocapture: the figures of the README's failure model.
    eprintln!(
        "fault matrix {name}: {requests} requests × {} faults: {} succeeded, {} failed with \
         the previous state, {} of unknown outcome (settled)",
        faults(0, layout).len(),
        tally.succeeded - 1,
        tally.failed,
        tally.unknown
    );
}

macro_rules! matrix {
    ($($name:ident: $op:expr, $layout:expr;)*) => {$(
        #[test]
        fn $name() {
            every_request_index($op, $layout);
        }
    )*};
}

macro_rules! sealed_matrix {
    ($($name:ident: $op:expr;)*) => {$(
        #[test]
        fn $name() {
            SEALED.with(|s| s.set(true));
            let c = config(&Arc::new(FaultyStore::new()), "db", LayoutKind::Versioned);
            assert!(c.versioned.encryption.is_some() && c.versioned.compression.is_some());
            every_request_index($op, LayoutKind::Versioned);
        }
    )*};
}

sealed_matrix! {
    sealed_open_and_read: Op::OpenRead;
    sealed_commit: Op::Commit;
    sealed_spilled_commit: Op::SpilledCommit;
    sealed_gc: Op::Gc;
    sealed_serialize: Op::Serialize;
    sealed_deserialize: Op::Deserialize;
}

matrix! {
    open_and_read_versioned: Op::OpenRead, LayoutKind::Versioned;
    open_and_read_compat: Op::OpenRead, LayoutKind::Compat;
    commit_versioned: Op::Commit, LayoutKind::Versioned;
    commit_compat: Op::Commit, LayoutKind::Compat;
    bulk_commit_versioned: Op::BulkCommit, LayoutKind::Versioned;
    bulk_commit_compat: Op::BulkCommit, LayoutKind::Compat;
    spilled_commit_versioned: Op::SpilledCommit, LayoutKind::Versioned;
    spilled_commit_compat: Op::SpilledCommit, LayoutKind::Compat;
    gc_versioned: Op::Gc, LayoutKind::Versioned;
    serialize_versioned: Op::Serialize, LayoutKind::Versioned;
    serialize_compat: Op::Serialize, LayoutKind::Compat;
    deserialize_versioned: Op::Deserialize, LayoutKind::Versioned;
    deserialize_compat: Op::Deserialize, LayoutKind::Compat;
}
