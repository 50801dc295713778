//! turbolite-bench: drive the `turbolite` crate (SQLite VFS tiered on S3)
//! against an S3-compatible endpoint and report timings as one JSON line.
//!
//! Commands (see README.md next to this file):
//!   import        --file F --bucket B --prefix P --endpoint URL [--cache-dir D]
//!   query         --bucket B --prefix P --endpoint URL --cache-dir D --sql S [--repeat N]
//!   write-bulk    --bucket B --prefix P --endpoint URL --cache-dir D --rows N
//!   write-commits --bucket B --prefix P --endpoint URL --cache-dir D --commits N
//!
//! Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
//! (optional AWS_SESSION_TOKEN); region from --region, else AWS_REGION, else
//! us-east-1. Requests are path-style SigV4 against --endpoint.
//!
//! stdout carries exactly one JSON line; turbolite's own progress chatter
//! goes to stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use hadb_storage_s3::S3Storage;
use rusqlite::{types::ValueRef, Connection, OpenFlags};
use serde_json::{json, Map, Value};
use turbolite::tiered::{CheckpointMode, SharedTurboliteVfs, TurboliteConfig, TurboliteVfs};
use turbolite::StorageBackend;

type Res<T> = Result<T, String>;

const USAGE: &str = "usage:
  turbolite-bench import        --file F --bucket B --prefix P --endpoint URL [--cache-dir D]
  turbolite-bench query         --bucket B --prefix P --endpoint URL --cache-dir D --sql S [--repeat N]
  turbolite-bench write-bulk    --bucket B --prefix P --endpoint URL --cache-dir D --rows N
  turbolite-bench write-commits --bucket B --prefix P --endpoint URL --cache-dir D --commits N
common options:
  --region R              (default: $AWS_REGION or us-east-1)
  --prefetch-threads N    turbolite prefetch pool size (default: ncpu+1)
  --pages-per-group N     import/new-db page-group size in pages (default 256)
  --sub-pages-per-frame N seekable zstd frame size in pages (default 4; 0 = off)
  --compression-level N   zstd level for S3 objects (default 3)
  --keep-cache            do not wipe --cache-dir before opening (warm run)
query options:
  --max-result-rows N     rows echoed in \"result\" (default 100; \"rows\" is always the full count)
  --read-write            open read-write instead of read-only
write options:
  --page-size N           PRAGMA page_size for a new database (default 4096)
  --journal wal|delete    wal: commit to local WAL, then PRAGMA wal_checkpoint(TRUNCATE) uploads;
                          delete: rollback journal, every commit's xSync uploads (default wal)
  --value-bytes N         size of the random-ish blob v per row (default 100)
  --no-verify             skip the post-write cold re-open that counts rows from S3";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let out = match run(&argv) {
        Ok(v) => {
            println!("{}", v);
            0
        }
        Err(e) => {
            println!("{}", json!({"ok": false, "error": e}));
            1
        }
    };
    // Exit without unwinding: the VFS is leaked into SQLite's registry and
    // its prefetch threads / tokio runtime would only slow down teardown.
    std::process::exit(out);
}

// ---------------------------------------------------------------------------
// argument parsing

struct Args {
    cmd: String,
    opts: HashMap<String, String>,
    flags: Vec<String>,
}

const BOOL_FLAGS: &[&str] = &["keep-cache", "read-write", "no-verify", "help"];

fn parse_args(argv: &[String]) -> Res<Args> {
    let mut it = argv.iter();
    let cmd = it.next().ok_or_else(|| USAGE.to_string())?.clone();
    if cmd == "--help" || cmd == "-h" || cmd == "help" {
        return Err(USAGE.to_string());
    }
    let mut opts = HashMap::new();
    let mut flags = Vec::new();
    while let Some(a) = it.next() {
        let key = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {a:?}"))?;
        let (key, inline) = match key.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (key, None),
        };
        if BOOL_FLAGS.contains(&key) {
            flags.push(key.to_string());
            continue;
        }
        let val = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| format!("--{key} needs a value"))?
                .clone(),
        };
        opts.insert(key.to_string(), val);
    }
    if flags.iter().any(|f| f == "help") {
        return Err(USAGE.to_string());
    }
    Ok(Args { cmd, opts, flags })
}

impl Args {
    fn req(&self, k: &str) -> Res<&str> {
        self.opts
            .get(k)
            .map(|s| s.as_str())
            .ok_or_else(|| format!("missing --{k}"))
    }
    fn opt(&self, k: &str) -> Option<&str> {
        self.opts.get(k).map(|s| s.as_str())
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Res<T> {
        match self.opts.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{k}: bad number {v:?}")),
        }
    }
    fn flag(&self, k: &str) -> bool {
        self.flags.iter().any(|f| f == k)
    }
}

// ---------------------------------------------------------------------------
// S3 backend + turbolite config

struct S3Target {
    endpoint: String,
    bucket: String,
    prefix: String,
    region: String,
}

impl S3Target {
    fn from_args(a: &Args) -> Res<Self> {
        let region = a
            .opt("region")
            .map(str::to_string)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        Ok(Self {
            endpoint: a.req("endpoint")?.to_string(),
            bucket: a.req("bucket")?.to_string(),
            prefix: a.req("prefix")?.to_string(),
            region,
        })
    }
}

/// Build an `S3Storage` (hadb-storage-s3) with an explicit client:
/// static credentials from the environment, fixed region, custom endpoint,
/// path-style addressing. Returns the concrete type so its GET/PUT counters
/// can be read; clones share the counters.
fn make_s3(rt: &tokio::runtime::Runtime, t: &S3Target) -> Res<S3Storage> {
    let ak = std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| "AWS_ACCESS_KEY_ID not set")?;
    let sk = std::env::var("AWS_SECRET_ACCESS_KEY").map_err(|_| "AWS_SECRET_ACCESS_KEY not set")?;
    let token = std::env::var("AWS_SESSION_TOKEN")
        .ok()
        .filter(|s| !s.is_empty());
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(t.region.clone()))
        .credentials_provider(Credentials::new(ak, sk, token, None, "env-static"))
        .endpoint_url(t.endpoint.clone())
        .force_path_style(true)
        .build();
    // Build inside the runtime so any lazily-created connector sees tokio.
    let client = rt.block_on(async move { aws_sdk_s3::Client::from_conf(conf) });
    Ok(S3Storage::new(client, t.bucket.clone()).with_prefix(t.prefix.clone()))
}

/// The runtime, the S3 storage (kept for its counters) and the same storage as turbolite's backend.
fn connect(t: &S3Target) -> Res<(tokio::runtime::Runtime, S3Storage, Arc<dyn StorageBackend>)> {
    let rt = make_runtime()?;
    let s3 = make_s3(&rt, t)?;
    let backend: Arc<dyn StorageBackend> = Arc::new(s3.clone());
    Ok((rt, s3, backend))
}

fn make_runtime() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn make_config(a: &Args, cache_dir: &Path, read_only: bool) -> Res<TurboliteConfig> {
    let mut c = TurboliteConfig {
        cache_dir: cache_dir.to_path_buf(),
        read_only,
        ..Default::default()
    };
    // Durable (default): every xSync of the main db (= WAL checkpoint, or a
    // rollback-journal commit) uploads dirty page groups + a new manifest
    // before returning.
    c.cache.checkpoint_mode = CheckpointMode::Durable;
    c.cache.pages_per_group = a.num("pages-per-group", c.cache.pages_per_group)?;
    c.cache.sub_pages_per_frame = a.num("sub-pages-per-frame", c.cache.sub_pages_per_frame)?;
    c.compression.level = a.num("compression-level", c.compression.level)?;
    c.prefetch.threads = a.num("prefetch-threads", c.prefetch.threads)?;
    // manifest_source stays Auto: with an empty cache dir there is no local
    // manifest, so the VFS GETs it from S3 once at construction (Remote would
    // GET it a second time on xOpen).
    Ok(c)
}

/// Files/dirs turbolite creates directly under cache_dir (observed in 0.5.0).
/// Used as a guard so we never recursively delete a directory that is not
/// a turbolite cache.
fn looks_like_turbolite_cache(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return true;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let known = name == "data.cache"
            || name.starts_with("bench.db")
            || name == "locks"
            || name == "staging"
            || name.starts_with("manifest")
            || name.starts_with("local_state")
            || name.starts_with("dirty_groups")
            || name.starts_with("page_bitmap")
            || name.starts_with("sub_chunk")
            || name.starts_with("cache_index")
            || name.starts_with("data.cache")
            || name.starts_with("temp_")
            || name.starts_with(".turbolite");
        if !known {
            return false;
        }
    }
    true
}

fn prepare_cache_dir(a: &Args, dir: &Path) -> Res<bool> {
    let wiped = if dir.exists() && !a.flag("keep-cache") {
        let empty = std::fs::read_dir(dir)
            .map(|mut r| r.next().is_none())
            .unwrap_or(true);
        if !empty {
            if !looks_like_turbolite_cache(dir) {
                return Err(format!(
                    "--cache-dir {} is not empty and does not look like a turbolite cache; refusing to wipe it",
                    dir.display()
                ));
            }
            std::fs::remove_dir_all(dir).map_err(|e| format!("wipe cache dir: {e}"))?;
        }
        true
    } else {
        !dir.exists()
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("create cache dir: {e}"))?;
    Ok(wiped)
}

static VFS_SEQ: AtomicU64 = AtomicU64::new(0);

/// Construct the VFS over `backend`, register it with SQLite under a fresh
/// name and open a connection to it. Returns the shared VFS handle (for
/// manifest inspection) and the connection.
fn open_db(
    rt: &tokio::runtime::Runtime,
    config: TurboliteConfig,
    backend: Arc<dyn StorageBackend>,
) -> Res<(SharedTurboliteVfs, Connection)> {
    let read_only = config.read_only;
    let vfs = TurboliteVfs::with_backend(config, backend, rt.handle().clone())
        .map_err(|e| format!("TurboliteVfs::with_backend: {e}"))?;
    let shared = SharedTurboliteVfs::new(vfs);
    let name = format!(
        "turbolite_bench_{}_{}",
        std::process::id(),
        VFS_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    turbolite::tiered::register_shared(&name, shared.clone())
        .map_err(|e| format!("register vfs: {e}"))?;
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    // The name only selects files inside cache_dir (main image is
    // cache_dir/data.cache, companions are cache_dir/bench.db-*).
    let conn = Connection::open_with_flags_and_vfs("bench.db", flags, name.as_str())
        .map_err(|e| format!("open: {e}"))?;
    // turbolite keeps its own manifest-aware page cache; this is what
    // turbolite::connect() does too.
    conn.execute_batch("PRAGMA cache_size=0;")
        .map_err(|e| format!("PRAGMA cache_size: {e}"))?;
    Ok((shared, conn))
}

fn s3_stats(s3: &S3Storage, base: (u64, u64, u64, u64)) -> Value {
    json!({
        "gets": s3.fetch_count() - base.0,
        "get_bytes": s3.bytes_fetched() - base.1,
        "puts": s3.put_count() - base.2,
        "put_bytes": s3.bytes_put() - base.3,
    })
}

fn s3_base(s3: &S3Storage) -> (u64, u64, u64, u64) {
    (
        s3.fetch_count(),
        s3.bytes_fetched(),
        s3.put_count(),
        s3.bytes_put(),
    )
}

fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------
// commands

fn run(argv: &[String]) -> Res<Value> {
    let a = parse_args(argv)?;
    match a.cmd.as_str() {
        "import" => cmd_import(&a),
        "query" => cmd_query(&a),
        "write-bulk" => cmd_write(&a, WriteKind::Bulk),
        "write-commits" => cmd_write(&a, WriteKind::Commits),
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// Cold "deserialize": read a plain SQLite file page by page, B-tree-group
/// the pages, zstd-encode page groups + interior/index bundles and PUT them
/// plus the manifest. Uses `turbolite::tiered::import_sqlite_file`, which
/// talks to the backend directly (no VFS, no local cache needed).
fn cmd_import(a: &Args) -> Res<Value> {
    let file = PathBuf::from(a.req("file")?);
    if !file.is_file() {
        return Err(format!("--file {} not found", file.display()));
    }
    let t = S3Target::from_args(a)?;
    // import_sqlite_file only reads config.cache.* / compression / encryption;
    // cache_dir is unused unless the caller wants one.
    let cache_dir = a
        .opt("cache-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("turbolite-bench-import-unused"));
    let config = make_config(a, &cache_dir, false)?;

    let t0 = Instant::now();
    let (rt, s3, backend) = connect(&t)?;
    let manifest =
        turbolite::tiered::import_sqlite_file(&config, backend, rt.handle().clone(), &file)
            .map_err(|e| format!("import_sqlite_file: {e}"))?;
    let elapsed = ms(t0);

    Ok(json!({
        "ok": true,
        "cmd": "import",
        "ms": elapsed,
        "file_bytes": std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0),
        "manifest_version": manifest.version,
        "page_size": manifest.page_size,
        "page_count": manifest.page_count,
        "pages_per_group": manifest.pages_per_group,
        "sub_pages_per_frame": manifest.sub_pages_per_frame,
        "page_groups": manifest.page_group_keys.len(),
        "interior_chunks": manifest.interior_chunk_keys.len(),
        "index_chunks": manifest.index_chunk_keys.len(),
        "s3": s3_stats(&s3, (0, 0, 0, 0)),
    }))
}

fn value_to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => {
            let mut s = String::with_capacity(b.len() * 2 + 3);
            s.push_str("x'");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s.push('\'');
            json!(s)
        }
    }
}

/// Run `sql`, step through every row, and keep up to `keep` rows as JSON.
fn run_sql(conn: &Connection, sql: &str, keep: usize) -> Res<(u64, Vec<Value>)> {
    let mut stmt = conn.prepare(sql).map_err(|e| format!("prepare: {e}"))?;
    let ncol = stmt.column_count();
    let mut rows = stmt.query([]).map_err(|e| format!("query: {e}"))?;
    let mut n = 0u64;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| format!("step: {e}"))? {
        if out.len() < keep {
            let mut row = Vec::with_capacity(ncol);
            for i in 0..ncol {
                row.push(value_to_json(
                    r.get_ref(i).map_err(|e| format!("column {i}: {e}"))?,
                ));
            }
            out.push(Value::Array(row));
        } else {
            // still touch the columns so the work is the same as reading them
            for i in 0..ncol {
                let _ = r.get_ref(i);
            }
        }
        n += 1;
    }
    Ok((n, out))
}

fn cmd_query(a: &Args) -> Res<Value> {
    let t = S3Target::from_args(a)?;
    let cache_dir = PathBuf::from(a.req("cache-dir")?);
    let sql = a.req("sql")?.to_string();
    let repeat: u64 = a.num("repeat", 0)?;
    let keep: usize = a.num("max-result-rows", 100)?;
    let read_only = !a.flag("read-write");
    let wiped = prepare_cache_dir(a, &cache_dir)?;
    let config = make_config(a, &cache_dir, read_only)?;

    // ---- timed: client + VFS (manifest GET) + open + first query ----
    let t0 = Instant::now();
    let (rt, s3, backend) = connect(&t)?;
    let (vfs, conn) = open_db(&rt, config, backend)?;
    if vfs.manifest().page_count == 0 {
        // hadb-storage-s3 maps NoSuchKey *and* NoSuchBucket to "absent", so
        // a typo would otherwise silently open an empty database.
        return Err(format!(
            "no turbolite database at s3://{}/{} (no manifest.msgpack, or no such bucket)",
            t.bucket, t.prefix
        ));
    }
    let open_ms = ms(t0);
    let (nrows, result) = run_sql(&conn, &sql, keep)?;
    let first_ms = ms(t0);
    let s3_first = s3_stats(&s3, (0, 0, 0, 0));

    let mut out = Map::new();
    out.insert("ok".into(), json!(true));
    out.insert("cmd".into(), json!("query"));
    out.insert("ms".into(), json!(first_ms));
    out.insert("open_ms".into(), json!(open_ms));
    out.insert("rows".into(), json!(nrows));
    out.insert("result".into(), Value::Array(result));
    out.insert("cache_wiped".into(), json!(wiped));
    out.insert("read_only".into(), json!(read_only));
    out.insert("s3".into(), s3_first);

    if repeat > 0 {
        let base = s3_base(&s3);
        let t1 = Instant::now();
        for _ in 0..repeat {
            let (n, _) = run_sql(&conn, &sql, 0)?;
            if n != nrows {
                return Err(format!("repeat returned {n} rows, first run {nrows}"));
            }
        }
        let total = ms(t1);
        out.insert("repeat".into(), json!(repeat));
        out.insert("repeat_total_ms".into(), json!(total));
        out.insert(
            "repeat_avg_ms".into(),
            json!(((total / repeat as f64) * 1000.0).round() / 1000.0),
        );
        out.insert("repeat_s3".into(), s3_stats(&s3, base));
    }
    let m = vfs.manifest();
    out.insert("manifest_version".into(), json!(m.version));
    out.insert("page_size".into(), json!(m.page_size));
    out.insert("page_count".into(), json!(m.page_count));
    Ok(Value::Object(out))
}

#[derive(Clone, Copy, PartialEq)]
enum WriteKind {
    Bulk,
    Commits,
}

/// Deterministic filler so runs are comparable; not cryptographic.
fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn cmd_write(a: &Args, kind: WriteKind) -> Res<Value> {
    let t = S3Target::from_args(a)?;
    let cache_dir = PathBuf::from(a.req("cache-dir")?);
    let n: u64 = match kind {
        WriteKind::Bulk => a.req("rows")?.parse().map_err(|_| "--rows: bad number")?,
        WriteKind::Commits => a
            .req("commits")?
            .parse()
            .map_err(|_| "--commits: bad number")?,
    };
    let page_size: u32 = a.num("page-size", 4096)?;
    let value_bytes: usize = a.num("value-bytes", 100)?;
    let journal = a.opt("journal").unwrap_or("wal").to_ascii_lowercase();
    if journal != "wal" && journal != "delete" {
        return Err("--journal must be wal or delete".into());
    }
    let wal = journal == "wal";
    let wiped = prepare_cache_dir(a, &cache_dir)?;
    let config = make_config(a, &cache_dir, false)?;

    // ---- timed: client + VFS + open + schema + writes + durability ----
    let t0 = Instant::now();
    let (rt, s3, backend) = connect(&t)?;
    let (vfs, conn) = open_db(&rt, config.clone(), backend)?;
    let sqlerr = |what: &'static str| move |e: rusqlite::Error| format!("{what}: {e}");
    // page_size only takes effect on a brand-new (empty) database.
    conn.execute_batch(&format!("PRAGMA page_size={page_size};"))
        .map_err(sqlerr("PRAGMA page_size"))?;
    let jm: String = conn
        .query_row(
            if wal {
                "PRAGMA journal_mode=WAL"
            } else {
                "PRAGMA journal_mode=DELETE"
            },
            [],
            |r| r.get(0),
        )
        .map_err(sqlerr("PRAGMA journal_mode"))?;
    // FULL so SQLite always xSyncs the main db at commit (rollback mode) /
    // checkpoint (WAL); turbolite's S3 upload happens inside that xSync.
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .map_err(sqlerr("PRAGMA synchronous"))?;
    if wal {
        // No implicit checkpoints: we checkpoint explicitly where we want
        // the data durable in S3.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(sqlerr("PRAGMA wal_autocheckpoint"))?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);
         CREATE INDEX IF NOT EXISTS t_k ON t(k);",
    )
    .map_err(sqlerr("create schema"))?;
    let checkpoint = |conn: &Connection| -> Res<()> {
        if wal {
            // (busy, log frames, checkpointed frames)
            let (busy, _log, _ckpt): (i64, i64, i64) = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(|e| format!("wal_checkpoint: {e}"))?;
            if busy != 0 {
                return Err("wal_checkpoint(TRUNCATE) reported busy".into());
            }
        }
        Ok(())
    };
    checkpoint(&conn)?; // schema durable before the measured writes
    let setup_ms = ms(t0);
    let start_id: i64 = conn
        .query_row("SELECT coalesce(max(id),0) FROM t", [], |r| r.get(0))
        .map_err(sqlerr("max(id)"))?;

    let mut commit_lat = Vec::new();
    let tw = Instant::now();
    // Row `i` of this run (ids continue after the existing rows).
    let insert = |st: &mut rusqlite::Statement, i: i64| {
        let id = start_id + i;
        st.execute(rusqlite::params![
            id,
            format!("key-{id:010}"),
            blob(id as u64, value_bytes)
        ])
        .map_err(sqlerr("insert"))
    };
    match kind {
        WriteKind::Bulk => {
            conn.execute_batch("BEGIN").map_err(sqlerr("BEGIN"))?;
            {
                let mut st = conn
                    .prepare("INSERT INTO t(id, k, v) VALUES (?1, ?2, ?3)")
                    .map_err(sqlerr("prepare insert"))?;
                for i in 1..=n as i64 {
                    insert(&mut st, i)?;
                }
            }
            conn.execute_batch("COMMIT").map_err(sqlerr("COMMIT"))?;
            checkpoint(&conn)?;
        }
        WriteKind::Commits => {
            let mut st = conn
                .prepare("INSERT INTO t(id, k, v) VALUES (?1, ?2, ?3)")
                .map_err(sqlerr("prepare insert"))?;
            for i in 1..=n as i64 {
                let tc = Instant::now();
                // autocommit: one implicit transaction per statement
                insert(&mut st, i)?;
                checkpoint(&conn)?;
                commit_lat.push(tc.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let write_ms = ms(tw);
    drop(conn); // close (WAL: final no-op checkpoint + WAL delete)
    let total_ms = ms(t0);
    let s3_all = s3_stats(&s3, (0, 0, 0, 0));
    let m = vfs.manifest();

    let mut out = Map::new();
    out.insert("ok".into(), json!(true));
    out.insert(
        "cmd".into(),
        json!(if kind == WriteKind::Bulk {
            "write-bulk"
        } else {
            "write-commits"
        }),
    );
    out.insert("ms".into(), json!(total_ms));
    out.insert("setup_ms".into(), json!(setup_ms));
    out.insert("write_ms".into(), json!(write_ms));
    out.insert("rows".into(), json!(n));
    out.insert("journal_mode".into(), json!(jm));
    out.insert("cache_wiped".into(), json!(wiped));
    out.insert("s3".into(), s3_all);
    out.insert("manifest_version".into(), json!(m.version));
    out.insert("page_size".into(), json!(m.page_size));
    out.insert("page_count".into(), json!(m.page_count));
    out.insert("page_groups".into(), json!(m.page_group_keys.len()));
    if kind == WriteKind::Commits && !commit_lat.is_empty() {
        let mut s = commit_lat.clone();
        s.sort_by(|x, y| x.partial_cmp(y).unwrap());
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        out.insert(
            "commit_ms".into(),
            json!({
                "avg": r(s.iter().sum::<f64>() / s.len() as f64),
                "p50": r(percentile(&s, 50.0)),
                "p90": r(percentile(&s, 90.0)),
                "p99": r(percentile(&s, 99.0)),
                "max": r(*s.last().unwrap()),
            }),
        );
    }

    // ---- untimed: prove durability by a cold open in a fresh cache dir ----
    if !a.flag("no-verify") {
        let vdir = std::env::temp_dir().join(format!(
            "turbolite-bench-verify-{}-{}",
            std::process::id(),
            VFS_SEQ.load(Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&vdir);
        std::fs::create_dir_all(&vdir).map_err(|e| format!("verify dir: {e}"))?;
        let tv = Instant::now();
        let s3v = make_s3(&rt, &t)?;
        let vconf = make_config(a, &vdir, true)?;
        let res = (|| -> Res<(i64, i64)> {
            let (_v, c) = open_db(&rt, vconf, Arc::new(s3v))?;
            c.query_row("SELECT count(*), coalesce(max(id),0) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| format!("verify query: {e}"))
        })();
        let _ = std::fs::remove_dir_all(&vdir);
        match res {
            Ok((count, max_id)) => {
                out.insert(
                    "verify".into(),
                    json!({
                        "ms": ms(tv),
                        "count": count,
                        "max_id": max_id,
                        "expected_max_id": start_id + n as i64,
                        "ok": max_id == start_id + n as i64,
                    }),
                );
                if max_id != start_id + n as i64 {
                    return Err(format!(
                        "durability check failed: cold re-open sees max(id)={max_id}, expected {}",
                        start_id + n as i64
                    ));
                }
            }
            Err(e) => return Err(format!("durability check failed: {e}")),
        }
    }
    Ok(Value::Object(out))
}
