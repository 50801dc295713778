//! The process's one tokio runtime for S3 I/O, and the only bridge from SQLite's synchronous
//! callbacks to async code.
//!
//! Multi-threaded on purpose: `Handle::block_on` on a current-thread runtime does not drive the
//! I/O and timer drivers, so every S3 call would hang. SQLite callbacks run on connection
//! threads, never on a tokio worker (where `block_on` panics).

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn handle() -> &'static Handle {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("s3vfs-io")
                .enable_all()
                .build()
                .expect("cannot start the tokio runtime")
        })
        .handle()
}

/// Runs a future to completion from a synchronous (non-tokio) thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    handle().block_on(fut)
}

/// Runs `f`, which blocks (waits for another thread), from any thread but the JS one: on a
/// runtime worker inside `block_in_place`, which hands the worker's other tasks to another
/// thread, so the runtime (its timers, its I/O) keeps going however many tasks wait.
pub fn blocking<R>(f: impl FnOnce() -> R) -> crate::error::Result<R> {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => Ok(f()),
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => Ok(tokio::task::block_in_place(f)),
        Ok(_) => Err(crate::error::Error::internal(
            "cannot wait for another thread on a current-thread runtime",
        )),
    }
}

/// Runs a future to completion from any thread but the JS one, even from inside a runtime (see
/// `blocking`). For the rare wait that SQLite's synchronous callbacks and async code can both
/// reach, such as asking the key provider for a key.
pub fn wait<F: Future>(fut: F) -> crate::error::Result<F::Output> {
    blocking(|| block_on(fut))
}

/// Runs a future on the runtime, detached.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(fut)
}

/// Awaits a future on this runtime from any async context (e.g. napi's), so every S3 request
/// and its connection pool live on one runtime.
pub async fn run<F>(fut: F) -> crate::error::Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn(fut)
        .await
        .map_err(|e| crate::error::Error::internal(format!("I/O task failed: {e}")))
}
