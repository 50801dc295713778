//! The object store: a small async interface over S3 (get with an optional byte range and
//! ETag condition, put with a mode, list, delete, head). Retries, timeouts and request counters
//! live in this layer and nowhere else.

#[cfg(test)]
mod conformance;
pub mod dir;
#[cfg(test)]
pub mod faults;
pub mod log;
pub mod memory;
pub mod retry;
pub mod s3;
pub mod stats;

use crate::error::Result;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use stats::{CountingStore, Stats, StatsSnapshot};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a PUT treats an existing object (object_store's `PutMode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    Overwrite,
    /// An overwrite of a key that is written again and again (the `sqlite-s3vfs` layout's blocks
    /// and journal): never abandoned early, since an abandoned request the server still applies
    /// could land after a newer write of the same key (`retry::Timeouts::rewrite`).
    Rewrite,
    /// `If-None-Match: *`: fails with `PreconditionFailed` when the key exists.
    Create,
    /// `If-Match: <etag>`: fails with `PreconditionFailed` when the object changed or is missing.
    Update(String),
}

#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Half-open byte range `[start, end)`.
    pub range: Option<(u64, u64)>,
    /// Answer `NotModified` when the object's ETag still equals this one.
    pub if_none_match: Option<String>,
}

#[derive(Debug, Clone)]
pub enum GetOutcome {
    Found(Object),
    NotModified,
    NotFound,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub body: Bytes,
    pub etag: Option<String>,
    /// Milliseconds since the Unix epoch, as the store reported it.
    pub last_modified_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified_ms: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Set when more keys follow; pass it back as `start_after` of the next call.
    pub next_start_after: Option<String>,
}

pub trait ObjectStore: Send + Sync {
    /// A short name of where the objects live, for error messages (`s3://bucket`).
    fn location(&self) -> String;
    /// Which store this is, for process-wide tables (probes, locks, known versions, the disk
    /// cache): two endpoints may have buckets of the same name.
    fn identity(&self) -> String {
        self.location()
    }
    /// Who may share the disk cache's copies of this store's objects: its identity, and
    /// whatever makes its objects unreadable to others (an SSE-C key: a process without it must
    /// not be served the blocks it could not fetch).
    fn cache_scope(&self) -> String {
        self.identity()
    }
    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>>;
    /// Returns the new object's ETag.
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>>;
    /// Keys under `prefix` in lexicographic order, after `start_after`, at most `max_keys`.
    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>>;
    /// Deleting a missing key succeeds (as on S3).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>>;
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>>;
    /// How long a caller that resends on its own (a create-only PUT, which the store sends once)
    /// waits before attempt `attempt` (1 = the first resend) after `error`: the store's retry
    /// policy, so every backoff follows one set of rules.
    fn retry_delay(
        &self,
        attempt: u32,
        error: Option<&crate::error::Error>,
    ) -> std::time::Duration {
        retry::resend_delay(&retry::RetryPolicy::default(), attempt, error)
    }
}

pub type DynStore = Arc<dyn ObjectStore>;

/// Milliseconds since the Unix epoch on the local clock (the unit of `last_modified_ms`).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The store's current time: the LastModified of an empty object written now at `scratch_key`
/// (then deleted). Ages compared with LastModified values are measured on this clock, never the
/// local one (which may be skewed, or stopped during a suspend).
pub async fn store_now(store: &dyn ObjectStore, scratch_key: &str) -> Result<i64> {
    store
        .put(scratch_key, Bytes::new(), PutMode::Overwrite)
        .await?;
    let meta = store.head(scratch_key).await;
    let _ = store.delete(scratch_key).await;
    meta?
        .and_then(|m| m.last_modified_ms)
        .ok_or_else(|| crate::error::Error::internal("the store reports no LastModified time"))
}

/// Deletes `keys`, `concurrency` requests at a time. Takes owned values so the future can be
/// spawned (it holds no borrow).
pub async fn delete_keys(store: DynStore, keys: Vec<String>, concurrency: usize) -> Result<()> {
    delete_keys_reporting(store, keys, concurrency, &|_| ()).await
}

/// `delete_keys`, telling `deleted` how many keys are gone after each one.
pub async fn delete_keys_reporting(
    store: DynStore,
    keys: Vec<String>,
    concurrency: usize,
    deleted: &(dyn Fn(u64) + Send + Sync),
) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    let mut done = 0u64;
    let mut gone = futures::stream::iter(keys.into_iter().map(|key| {
        let store = store.clone();
        async move { store.delete(&key).await }
    }))
    .buffer_unordered(concurrency.max(1));
    while gone.try_next().await?.is_some() {
        done += 1;
        deleted(done);
    }
    Ok(())
}

/// Every key under `prefix`, following pagination.
pub async fn list_all(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(prefix, after.as_deref(), None).await?;
        out.extend(page.objects);
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// The first key under `prefix` (in listing order) that `parse` accepts, with what it parsed to.
/// One `max-keys=1` LIST when that key comes first (the usual case); keys that are not ours (a
/// folder marker such as `P/` made by the S3 console, a `P/.keep`) are skipped, never taken to
/// mean "nothing here".
pub async fn first_key_where<T>(
    store: &dyn ObjectStore,
    prefix: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>> {
    match first_key_within(store, prefix, &parse, u32::MAX).await? {
        Searched::Found(t) => Ok(Some(t)),
        Searched::None => Ok(None),
        Searched::GaveUp => Err(crate::error::Error::internal(format!(
            "listing {prefix}: too many keys that are not ours"
        ))),
    }
}

/// What a bounded search of a listing found.
pub enum Searched<T> {
    Found(T),
    /// The listing holds none of our keys.
    None,
    /// `max_pages` pages of foreign keys: the caller narrows the search instead.
    GaveUp,
}

/// `first_key_where`, reading at most `max_pages` pages (the first of one key, then 1,000 each).
pub async fn first_key_within<T>(
    store: &dyn ObjectStore,
    prefix: &str,
    parse: &impl Fn(&str) -> Option<T>,
    max_pages: u32,
) -> Result<Searched<T>> {
    let mut after: Option<String> = None;
    let mut max_keys = 1;
    for _ in 0..max_pages {
        let page = store.list(prefix, after.as_deref(), Some(max_keys)).await?;
        if let Some(found) = page.objects.iter().find_map(|o| parse(&o.key)) {
            return Ok(Searched::Found(found));
        }
        match page.next_start_after {
            // A store that does not move forward would loop forever: treat it as the end.
            Some(next) if after.as_ref().is_none_or(|a| next > *a) => after = Some(next),
            _ => return Ok(Searched::None),
        }
        max_keys = 1000;
    }
    Ok(Searched::GaveUp)
}
