//! Fault injection as data, for Rust tests: a store wrapper that fails, delays, stalls, or
//! applies-then-fails the requests its rules select (by kind, key and index), and logs every
//! request, so a test can first count an operation's requests and then fault each one in turn.

use super::memory::MemoryStore;
use super::{BoxFuture, GetOptions, GetOutcome, ListPage, ObjectMeta, ObjectStore, PutMode};
use crate::error::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::sync::Mutex;
use std::time::Duration;

/// A request's kind. `Create` is a PUT with `If-None-Match: *`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Create,
    List,
    Delete,
    Head,
}

impl Op {
    /// Whether a rule for `self` applies to a request of kind `op` (`Put` covers creates).
    fn covers(self, op: Op) -> bool {
        self == op || (self == Op::Put && op == Op::Create)
    }
}

/// What happens to a selected request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Nothing is applied; the caller gets this error.
    Fail(Error),
    /// The request is applied, but its answer is lost: the caller gets this error.
    LandThenFail(Error),
    /// The answer comes this much later.
    Delay(Duration),
    /// No answer ever comes (the caller's timeout must cut it short).
    Stall,
    /// The caller gets this error now, and the write (PUT or DELETE) is applied this much later,
    /// as a request the server received but answered too late (a "zombie" write).
    LandLate(Error, Duration),
}

/// Which requests a rule selects: of those matching `op` and `key_part`, the ones numbered
/// `skip + 1 ..= skip + count`. Rules are offered a request in order, and the first live one that
/// matches takes it, so rules with `skip: 0, count: 1` form a queue.
#[derive(Debug, Clone)]
pub struct Rule {
    pub op: Option<Op>,
    pub key_part: String,
    pub skip: usize,
    pub count: usize,
    pub action: Action,
}

impl Rule {
    /// The `n`th request (0-based) of any kind from now on.
    pub fn nth(n: usize, action: Action) -> Rule {
        Rule {
            op: None,
            key_part: String::new(),
            skip: n,
            count: 1,
            action,
        }
    }

    /// Every request from the `n`th on (an outage), until `heal`.
    pub fn from(n: usize, action: Action) -> Rule {
        Rule {
            count: usize::MAX,
            ..Rule::nth(n, action)
        }
    }
}

/// An error as the S3 store would return it for `code` (its kind included).
pub fn s3_error(code: &str) -> Error {
    let kind = match code {
        "SlowDown" | "ServiceUnavailable" => ErrorKind::Throttled,
        "InternalError" | "ETIMEDOUT" | "ECONNRESET" | "ConditionalRequestConflict" => {
            ErrorKind::Transient
        }
        _ => ErrorKind::Permanent,
    };
    Error::new(code, format!("injected {code}")).with_kind(kind)
}

struct Live {
    rule: Rule,
    seen: usize,
}

#[derive(Default)]
pub struct FaultyStore {
    pub inner: std::sync::Arc<MemoryStore>,
    rules: Mutex<Vec<Live>>,
    log: Mutex<Vec<(Op, String)>>,
    fired: std::sync::atomic::AtomicUsize,
}

impl FaultyStore {
    pub fn new() -> Self {
        FaultyStore {
            inner: std::sync::Arc::new(MemoryStore::new()),
            ..Default::default()
        }
    }

    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(Live { rule, seen: 0 });
    }

    /// The next PUT of a key containing `key_part` fails as `action` says.
    pub fn inject(&self, key_part: &str, action: Action) {
        self.add(Rule {
            op: Some(Op::Put),
            key_part: key_part.to_string(),
            skip: 0,
            count: 1,
            action,
        });
    }

    /// Removes every rule: the store works again.
    pub fn heal(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Requests seen since the last `take_log`.
    pub fn take_log(&self) -> Vec<(Op, String)> {
        std::mem::take(&mut self.log.lock().unwrap())
    }

    /// Requests a rule has applied to so far.
    pub fn fired(&self) -> usize {
        self.fired.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn keys(&self) -> Vec<String> {
        self.inner.keys()
    }

    fn action_for(&self, op: Op, key: &str) -> Option<Action> {
        self.log.lock().unwrap().push((op, key.to_string()));
        let mut rules = self.rules.lock().unwrap();
        let live = rules.iter_mut().find(|l| {
            l.seen < l.rule.skip.saturating_add(l.rule.count)
                && l.rule.op.is_none_or(|o| o.covers(op))
                && key.contains(l.rule.key_part.as_str())
        })?;
        live.seen += 1;
        let fire = live.seen > live.rule.skip;
        if fire {
            self.fired
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fire.then(|| live.rule.action.clone())
    }

    /// `Action::LandLate` of a write: the caller gets `error` now, and `write` is applied to the
    /// inner store after `after`, in the background.
    fn land_late<T>(
        &self,
        key: &str,
        error: Error,
        after: Duration,
        write: impl FnOnce(std::sync::Arc<MemoryStore>, String) -> BoxFuture<'static, ()>,
    ) -> Result<T> {
        let late = write(self.inner.clone(), key.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            late.await
        });
        Err(error.context(key))
    }

    /// Runs `request` under whatever fault the rules pick for it.
    async fn faulted<T>(
        &self,
        op: Op,
        key: &str,
        request: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let action = self.action_for(op, key);
        self.apply(action, key, request).await
    }

    async fn apply<T>(
        &self,
        action: Option<Action>,
        key: &str,
        request: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match action {
            None => request.await,
            Some(Action::Fail(e)) => Err(e.context(key)),
            Some(Action::LandThenFail(e)) => {
                let _ = request.await;
                Err(e.context(key))
            }
            Some(Action::Delay(d)) => {
                tokio::time::sleep(d).await;
                request.await
            }
            Some(Action::Stall) => std::future::pending().await,
            // Reads have no late landing: the answer is just lost.
            Some(Action::LandLate(e, _)) => Err(e.context(key)),
        }
    }
}

impl ObjectStore for FaultyStore {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>> {
        Box::pin(self.faulted(Op::Get, key, self.inner.get(key, opts)))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let op = if mode == PutMode::Create {
            Op::Create
        } else {
            Op::Put
        };
        Box::pin(async move {
            match self.action_for(op, key) {
                Some(Action::LandLate(e, after)) => self.land_late(key, e, after, |inner, key| {
                    Box::pin(async move {
                        let _ = inner.put(&key, body, mode).await;
                    })
                }),
                action => {
                    self.apply(action, key, self.inner.put(key, body, mode))
                        .await
                }
            }
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(self.faulted(
            Op::List,
            prefix,
            self.inner.list(prefix, start_after, max_keys),
        ))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.action_for(Op::Delete, key) {
                Some(Action::LandLate(e, after)) => self.land_late(key, e, after, |inner, key| {
                    Box::pin(async move {
                        let _ = inner.delete(&key).await;
                    })
                }),
                action => self.apply(action, key, self.inner.delete(key)).await,
            }
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        Box::pin(self.faulted(Op::Head, key, self.inner.head(key)))
    }

    /// Tests resend without waiting.
    fn retry_delay(&self, _attempt: u32, _error: Option<&Error>) -> Duration {
        Duration::from_millis(1)
    }
}
