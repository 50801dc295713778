//! Request and byte counters, and the store wrapper that keeps them. Counts are of logical
//! requests (their retries are counted apart, in `retries`), so tests can assert them.

use super::{BoxFuture, GetOptions, GetOutcome, ListPage, ObjectMeta, ObjectStore, PutMode};
use crate::error::Result;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Stats {
    pub get: AtomicU64,
    pub put: AtomicU64,
    pub list: AtomicU64,
    pub delete: AtomicU64,
    pub head: AtomicU64,
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Blocks whose GET read-ahead started before SQLite asked for them.
    pub prefetched: AtomicU64,
    /// Requests sent again after a transient failure (`retry::RetryingStore`).
    pub retries: AtomicU64,
    /// Bytes of buffered writes held in memory now, and at most since open (`MemoryBudget`).
    pub buffered: AtomicU64,
    pub buffered_peak: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub get: u64,
    pub put: u64,
    pub list: u64,
    pub delete: u64,
    pub head: u64,
    pub bytes_down: u64,
    pub bytes_up: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub prefetched: u64,
    pub retries: u64,
    pub buffered: u64,
    pub buffered_peak: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            get: self.get.load(Relaxed),
            put: self.put.load(Relaxed),
            list: self.list.load(Relaxed),
            delete: self.delete.load(Relaxed),
            head: self.head.load(Relaxed),
            bytes_down: self.bytes_down.load(Relaxed),
            bytes_up: self.bytes_up.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
            prefetched: self.prefetched.load(Relaxed),
            retries: self.retries.load(Relaxed),
            buffered: self.buffered.load(Relaxed),
            buffered_peak: self.buffered_peak.load(Relaxed),
        }
    }

    pub fn count_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.fetch_add(1, Relaxed);
        } else {
            self.cache_misses.fetch_add(1, Relaxed);
        }
    }
}

/// Wraps a store and counts what goes through it.
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    stats: Arc<Stats>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, stats: Arc<Stats>) -> Self {
        CountingStore { inner, stats }
    }
}

impl ObjectStore for CountingStore {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn cache_scope(&self) -> String {
        self.inner.cache_scope()
    }

    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>> {
        Box::pin(async move {
            self.stats.get.fetch_add(1, Relaxed);
            let out = self.inner.get(key, opts).await?;
            if let GetOutcome::Found(obj) = &out {
                self.stats
                    .bytes_down
                    .fetch_add(obj.body.len() as u64, Relaxed);
            }
            Ok(out)
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            self.stats.put.fetch_add(1, Relaxed);
            self.stats.bytes_up.fetch_add(body.len() as u64, Relaxed);
            self.inner.put(key, body, mode).await
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        self.stats.list.fetch_add(1, Relaxed);
        self.inner.list(prefix, start_after, max_keys)
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        self.stats.delete.fetch_add(1, Relaxed);
        self.inner.delete(key)
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        self.stats.head.fetch_add(1, Relaxed);
        self.inner.head(key)
    }

    fn retry_delay(
        &self,
        attempt: u32,
        error: Option<&crate::error::Error>,
    ) -> std::time::Duration {
        // The caller resends after this delay (a root create, the probe): a retry too.
        self.stats.retries.fetch_add(1, Relaxed);
        self.inner.retry_delay(attempt, error)
    }
}
