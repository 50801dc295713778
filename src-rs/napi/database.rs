//! `NativeDatabase`: the connection's async commands as JS methods.

use super::error::{to_js, IntoJs};
use super::options::{config, JsOptions};
use super::values::{params, JsParams, JsRows, JsRunResult};
use crate::connection::{Command, Connection, Reply};
use napi::bindgen_prelude::Object;
use napi::Env;
use std::sync::Arc;

#[napi(object)]
pub struct JsStats {
    pub get: f64,
    pub put: f64,
    pub list: f64,
    pub delete: f64,
    pub head: f64,
    pub bytes_down: f64,
    pub bytes_up: f64,
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub prefetched: f64,
    /// Requests sent again after a transient failure (throttling, 5xx, a timeout, a reset).
    pub retries: f64,
    /// Bytes of buffered writes (changed blocks, rollback journal) held in memory now.
    pub buffered: f64,
    /// The most `buffered` has been since open (at most about `memoryLimit`).
    pub buffered_peak: f64,
}

impl From<crate::store::StatsSnapshot> for JsStats {
    fn from(s: crate::store::StatsSnapshot) -> Self {
        JsStats {
            get: s.get as f64,
            put: s.put as f64,
            list: s.list as f64,
            delete: s.delete as f64,
            head: s.head as f64,
            bytes_down: s.bytes_down as f64,
            bytes_up: s.bytes_up as f64,
            cache_hits: s.cache_hits as f64,
            cache_misses: s.cache_misses as f64,
            prefetched: s.prefetched as f64,
            retries: s.retries as f64,
            buffered: s.buffered as f64,
            buffered_peak: s.buffered_peak as f64,
        }
    }
}

#[napi]
pub struct NativeDatabase {
    pub(crate) conn: Arc<Connection>,
}

#[napi]
impl NativeDatabase {
    #[napi(constructor)]
    pub fn new(bucket: String, prefix: String, options: Option<JsOptions>) -> napi::Result<Self> {
        let conn = config(bucket, prefix, options)
            .and_then(Connection::start)
            .js()?;
        Ok(NativeDatabase {
            conn: Arc::new(conn),
        })
    }

    // Every command is handed to the connection thread synchronously, in the order JS calls
    // these methods (an `async fn` would send it later, from a task on the runtime, and two
    // calls could overtake each other): the TypeScript layer relies on that order.

    #[napi(ts_return_type = "Promise<void>")]
    pub fn open<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        promise(env, &self.conn, Command::Open, |()| ())
    }

    /// `'committed'`, `'lost'` or `'none'` (no commit of unknown outcome).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn settle<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        use crate::vfs::versioned::Settled;
        promise(env, &self.conn, Command::Settle, |verdict| {
            match verdict {
                Settled::Nothing => "none",
                Settled::Committed(_) => "committed",
                Settled::Lost(_) => "lost",
            }
            .to_string()
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn exec<'e>(&self, env: &'e Env, sql: String) -> napi::Result<Object<'e>> {
        promise(env, &self.conn, |r| Command::Exec(sql, r), |()| ())
    }

    #[napi(ts_return_type = "Promise<JsRunResult>")]
    pub fn run<'e>(
        &self,
        env: &'e Env,
        sql: String,
        args: Option<JsParams>,
    ) -> napi::Result<Object<'e>> {
        let p = params(args).js()?;
        promise(
            env,
            &self.conn,
            |r| Command::Run(sql, p, r),
            JsRunResult::from,
        )
    }

    #[napi(ts_return_type = "Promise<JsRows>")]
    pub fn query<'e>(
        &self,
        env: &'e Env,
        sql: String,
        args: Option<JsParams>,
        first_only: bool,
    ) -> napi::Result<Object<'e>> {
        let p = params(args).js()?;
        let query = |reply| Command::Query {
            sql,
            params: p,
            first_only,
            reply,
        };
        promise(env, &self.conn, query, JsRows::from)
    }

    /// Compiles a statement (cached for later calls with the same SQL); returns its columns.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn prepare<'e>(&self, env: &'e Env, sql: String) -> napi::Result<Object<'e>> {
        promise(env, &self.conn, |r| Command::Prepare(sql, r), |c| c)
    }

    /// Starts an iterator; resolves with its id once the statement is prepared.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn iterate_start<'e>(
        &self,
        env: &'e Env,
        sql: String,
        args: Option<JsParams>,
    ) -> napi::Result<Object<'e>> {
        let p = params(args).js()?;
        let id = self.conn.next_iterator_id();
        let start = |reply| Command::IterStart {
            id,
            sql,
            params: p,
            reply,
        };
        promise(env, &self.conn, start, move |_columns| id as u32)
    }

    #[napi(ts_return_type = "Promise<JsRows>")]
    pub fn iterate_next<'e>(&self, env: &'e Env, id: u32, max: u32) -> napi::Result<Object<'e>> {
        let next = |reply| Command::IterNext {
            id: id as u64,
            max: max as usize,
            reply,
        };
        promise(env, &self.conn, next, JsRows::from)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn iterate_close<'e>(&self, env: &'e Env, id: u32) -> napi::Result<Object<'e>> {
        promise(
            env,
            &self.conn,
            |r| Command::IterClose(id as u64, r),
            |()| (),
        )
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.conn.close().await.js()
    }

    /// The version the connection has pinned (versioned layout; 0 before the first read or in
    /// the `sqlite-s3vfs` layout).
    #[napi]
    pub fn version(&self) -> f64 {
        self.conn.version() as f64
    }

    /// The layout's name, once the database is open.
    #[napi]
    pub fn layout(&self) -> Option<String> {
        self.conn.layout().map(|l| l.name().to_string())
    }

    /// The block size, once the database is open.
    #[napi]
    pub fn block_size(&self) -> Option<f64> {
        self.conn.block_size().map(|b| b as f64)
    }

    #[napi]
    pub fn stats(&self) -> JsStats {
        self.conn.stats().into()
    }

    /// Makes the running statement fail with `SQLITE_INTERRUPT` (the database stays usable).
    #[napi]
    pub fn interrupt(&self) {
        self.conn.interrupt();
    }
}

/// Sends a command whose promise the connection thread resolves itself (one wake-up of the JS
/// thread, no async task on the runtime): the hot path of `run` and `query`.
fn promise<'e, T: Send + 'static, J: napi::bindgen_prelude::ToNapiValue + 'static>(
    env: &'e Env,
    conn: &Connection,
    make: impl FnOnce(Reply<T>) -> Command,
    to_js_value: impl FnOnce(T) -> J + Send + 'static,
) -> napi::Result<Object<'e>> {
    let (deferred, promise) = env.create_deferred()?;
    let answer = move |r: crate::error::Result<T>| match r {
        Ok(v) => deferred.resolve(move |_| Ok(to_js_value(v))),
        Err(e) => deferred.reject(to_js(e)),
    };
    conn.submit(make, answer).js()?;
    Ok(promise)
}
