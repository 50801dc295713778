//! An in-memory store with S3's semantics, for Rust unit tests (and, wrapped in
//! `faults::FaultyStore`, fault injection). Never used by the integration tests, which talk to a
//! real S3-protocol server.

use super::now_ms;
use super::{
    BoxFuture, GetOptions, GetOutcome, ListPage, Object, ObjectMeta, ObjectStore, PutMode,
};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, String, i64)>>,
    next_etag: std::sync::atomic::AtomicU64,
    /// Distinguishes stores in process-wide tables keyed by `identity()`.
    id: u64,
}

const PAGE: usize = 1000;

impl MemoryStore {
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        MemoryStore {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Self::default()
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
}

impl ObjectStore for MemoryStore {
    fn location(&self) -> String {
        "memory://".into()
    }

    fn identity(&self) -> String {
        format!("memory://{}", self.id)
    }

    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>> {
        Box::pin(async move {
            let objects = self.objects.lock().unwrap();
            let Some((body, etag, modified)) = objects.get(key) else {
                return Ok(GetOutcome::NotFound);
            };
            if opts.if_none_match.as_deref() == Some(etag.as_str()) {
                return Ok(GetOutcome::NotModified);
            }
            let body = match opts.range {
                Some((start, end)) => {
                    let len = body.len() as u64;
                    body.slice(start.min(len) as usize..end.min(len) as usize)
                }
                None => body.clone(),
            };
            Ok(GetOutcome::Found(Object {
                body,
                etag: Some(etag.clone()),
                last_modified_ms: Some(*modified),
            }))
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let mut objects = self.objects.lock().unwrap();
            let existing = objects.get(key).map(|(_, e, _)| e.clone());
            let allowed = match (&mode, &existing) {
                (PutMode::Overwrite | PutMode::Rewrite, _) => true,
                (PutMode::Create, existing) => existing.is_none(),
                (PutMode::Update(want), Some(have)) => want == have,
                (PutMode::Update(_), None) => false,
            };
            if !allowed {
                return Err(Error::new(
                    crate::error::codes::PRECONDITION_FAILED,
                    format!("{key}: precondition failed"),
                )
                .with_kind(crate::error::ErrorKind::Conflict));
            }
            let n = self
                .next_etag
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let etag = format!("\"m{n}\"");
            objects.insert(key.to_string(), (body, etag.clone(), now_ms()));
            Ok(Some(etag))
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(async move {
            let objects = self.objects.lock().unwrap();
            let limit = max_keys.map(|m| m as usize).unwrap_or(PAGE).min(PAGE);
            let mut page = ListPage::default();
            for (key, (body, _, modified)) in objects.range(prefix.to_string()..) {
                if !key.starts_with(prefix) {
                    break;
                }
                if start_after.is_some_and(|after| key.as_str() <= after) {
                    continue;
                }
                if page.objects.len() == limit {
                    page.next_start_after = page.objects.last().map(|o| o.key.clone());
                    break;
                }
                page.objects.push(ObjectMeta {
                    key: key.clone(),
                    size: body.len() as u64,
                    last_modified_ms: Some(*modified),
                });
            }
            Ok(page)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        Box::pin(async move {
            Ok(self
                .objects
                .lock()
                .unwrap()
                .get(key)
                .map(|(body, _, modified)| ObjectMeta {
                    key: key.to_string(),
                    size: body.len() as u64,
                    last_modified_ms: Some(*modified),
                }))
        })
    }
}
