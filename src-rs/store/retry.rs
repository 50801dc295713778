//! Retries and timeouts: the one place that decides how long a request may take and whether to
//! send it again. Every request of every store goes through `RetryingStore`; the SDK's own
//! retries are off, and the S3 store only applies the per-attempt timeouts given here (first
//! byte, body stall), since only it sees the response stream.
//!
//! - A transient failure (5xx, a timeout, a reset, a conditional request that raced another) is
//!   retried with jittered exponential backoff, bounded by attempts and by a total time budget.
//! - A throttling answer (503 SlowDown, 429) backs off the whole client, not only the request:
//!   every request of this store waits out a shared, growing penalty that successes shrink.
//! - Anything else (403, a missing bucket, 400, a failed precondition) is returned at once.
//! - A create-only PUT (`If-None-Match: *`) is sent once per call: a resend could be answered 412
//!   by our own first send, so its caller resends and decides that itself (the commit protocol).

use super::log::{Answer, Level, RequestEvent, RequestLog};
use super::{BoxFuture, GetOptions, GetOutcome, ListPage, ObjectMeta, ObjectStore, PutMode, Stats};
use crate::error::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, including the first.
    pub max_attempts: u32,
    /// The first backoff after a transient failure; it doubles with each attempt.
    pub base_delay: Duration,
    /// The first backoff after a throttling answer (SlowDown asks for a longer pause).
    pub throttle_delay: Duration,
    /// No single backoff is longer than this.
    pub max_delay: Duration,
    /// A request, all its attempts and backoffs included, gives up after this long.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            throttle_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(30),
        }
    }
}

/// How long one attempt may take before it is abandoned (and retried, if attempts remain).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// From sending a request (a PUT: after its body at `min_upload_rate`) to the first byte of
    /// the answer. S3's guidelines suggest retrying latency-sensitive small GETs after ~2 s.
    pub first_byte: Duration,
    /// The longest pause while a response body is flowing.
    pub body_stall: Duration,
    /// Bytes per second an upload (or a ranged download) is given, on top of `first_byte`, so
    /// a large request is not cut short while a small one still is.
    pub min_upload_rate: u64,
    /// A LIST: its answer (up to 1,000 keys of XML) is read whole before it counts as answered.
    pub list: Duration,
    /// A write that must not be abandoned early (`PutMode::Rewrite`, DELETE): an abandoned
    /// request the server still applies could land after a newer write of the same key, so it
    /// gets this long (plus its size at `min_upload_rate`).
    pub rewrite: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(3100),
            first_byte: Duration::from_secs(2),
            body_stall: Duration::from_secs(2),
            min_upload_rate: 1 << 20,
            list: Duration::from_secs(5),
            rewrite: Duration::from_secs(15),
        }
    }
}

impl Timeouts {
    fn at_rate(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.min_upload_rate.max(1) as f64)
    }

    /// A LIST of at most `max_keys` keys: a small page (the one-key LIST that opens a database)
    /// is as quick to answer as a small GET.
    pub fn list_limit(&self, max_keys: Option<u32>) -> Duration {
        match max_keys {
            Some(m) if m <= 100 => self.first_byte,
            _ => self.list,
        }
    }

    /// The first-byte limit of a PUT of `upload_bytes` in `mode`.
    pub fn write_limit(&self, mode: &PutMode, upload_bytes: u64) -> Duration {
        let base = if *mode == PutMode::Rewrite {
            self.rewrite
        } else {
            self.first_byte
        };
        base + self.at_rate(upload_bytes)
    }

    /// A backstop for a whole attempt (`None`: unknown size, only the budget bounds it). The S3
    /// store applies the finer limits itself; this one is looser, so it only catches what the
    /// store cannot (an in-memory store in tests, a stream that trickles).
    fn attempt_for(&self, req: &Request<'_>) -> Option<Duration> {
        let base = match req.kind {
            Kind::Read => self.first_byte,
            Kind::List => self.list,
            Kind::Write(ref mode) => self.write_limit(mode, 0),
            Kind::Delete => self.rewrite,
        };
        let download = req.download_bytes?;
        Some(base + self.body_stall + self.at_rate(req.upload_bytes + download))
    }
}

/// The retry and timeout settings of one store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
}

/// The error of an attempt cut short.
pub fn timed_out(what: &str, after: Duration) -> Error {
    Error::transient(
        "ETIMEDOUT",
        format!("{what}: no answer within {} ms", after.as_millis()),
    )
}

/// A client-wide pause that throttling answers grow and successes shrink (S3 asks a client that
/// gets SlowDown to reduce its request rate, not to hammer it with retries of each request).
#[derive(Default)]
struct Throttle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    penalty: Duration,
    not_before: Option<Instant>,
}

impl Throttle {
    async fn wait(&self) {
        let until = self.state.lock().unwrap().not_before;
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    fn throttled(&self, policy: &RetryPolicy) {
        let mut s = self.state.lock().unwrap();
        s.penalty = (s.penalty * 2)
            .max(policy.throttle_delay)
            .min(policy.max_delay);
        let until = Instant::now() + jitter(s.penalty);
        s.not_before = Some(s.not_before.map_or(until, |t| t.max(until)));
    }

    fn succeeded(&self) {
        let mut s = self.state.lock().unwrap();
        if s.penalty.is_zero() {
            return;
        }
        s.penalty /= 2;
        if s.penalty < Duration::from_millis(10) {
            s.penalty = Duration::ZERO;
            s.not_before = None;
        }
    }
}

/// Half the delay fixed, half random ("equal jitter"): retries of many clients spread out, and
/// none comes back sooner than half its backoff.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// The backoff before attempt `attempt` (1 = the first retry) after a failure, `throttled` or not.
fn backoff(policy: &RetryPolicy, attempt: u32, throttled: bool) -> Duration {
    let base = if throttled {
        policy.throttle_delay
    } else {
        policy.base_delay
    };
    let exp = attempt.saturating_sub(1).min(20);
    jitter(base.saturating_mul(1 << exp).min(policy.max_delay))
}

/// `backoff` for a caller that resends on its own (`error`: what the last send returned).
pub fn resend_delay(policy: &RetryPolicy, attempt: u32, error: Option<&Error>) -> Duration {
    let throttled = error.is_some_and(|e| e.kind == ErrorKind::Throttled);
    backoff(policy, attempt, throttled)
}

/// A store whose every request is timed and retried by `Policy`.
pub struct RetryingStore {
    inner: Arc<dyn ObjectStore>,
    policy: Policy,
    throttle: Throttle,
    stats: Arc<Stats>,
    log: Option<RequestLog>,
}

/// The numbers of a log event: bytes moved, milliseconds, attempt number.
struct Figures {
    bytes: u64,
    ms: u64,
    attempt: u32,
}

/// What a request sends and expects, for its timeouts and its retries.
struct Request<'a> {
    what: &'a str,
    /// For the log: GET, PUT, LIST, DELETE, HEAD.
    method: &'static str,
    kind: Kind,
    upload_bytes: u64,
    download_bytes: Option<u64>,
    /// Sent once: the caller decides what a failure means (a create-only PUT).
    once: bool,
}

enum Kind {
    Read,
    List,
    Write(PutMode),
    Delete,
}

impl<'a> Request<'a> {
    /// A request with no body either way (DELETE, HEAD).
    fn bodiless(what: &'a str, method: &'static str, kind: Kind) -> Self {
        Request {
            what,
            method,
            kind,
            upload_bytes: 0,
            download_bytes: Some(0),
            once: false,
        }
    }
}

impl RetryingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, policy: Policy, stats: Arc<Stats>) -> Self {
        RetryingStore {
            inner,
            policy,
            throttle: Throttle::default(),
            stats,
            log: None,
        }
    }

    /// Sends every attempt, retry and give-up to `log`.
    pub fn with_log(mut self, log: Option<RequestLog>) -> Self {
        self.log = log;
        self
    }

    fn emit(&self, req: &Request, level: Level, status: &str, at: Figures, message: String) {
        if let Some(log) = &self.log {
            (log.0)(RequestEvent {
                level,
                method: req.method,
                key: req.what.to_string(),
                status: status.to_string(),
                bytes: at.bytes,
                ms: at.ms,
                attempt: at.attempt,
                message,
            });
        }
    }

    async fn run<'a, T: Answer, F, Fut>(&'a self, req: Request<'a>, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>> + 'a,
    {
        let started = Instant::now();
        let retry = &self.policy.retry;
        let limit = self.policy.timeouts.attempt_for(&req);
        let mut attempts = 0u32;
        loop {
            self.throttle.wait().await;
            // Each attempt is held to its own limit and to what is left of the budget: the
            // budget is a deadline for the request, even for an attempt that never answers.
            // None starts with nothing left (it could be sent and then abandoned at once).
            let left = retry.budget.saturating_sub(started.elapsed());
            if left < Duration::from_millis(10) {
                return Err(gave_up(
                    timed_out(req.what, retry.budget),
                    attempts,
                    started.elapsed(),
                ));
            }
            attempts += 1;
            let cut = limit.map_or(left, |l| l.min(left));
            let sent = Instant::now();
            let result = tokio::time::timeout(cut, attempt())
                .await
                .unwrap_or_else(|_| Err(timed_out(req.what, cut)));
            let ms = sent.elapsed().as_millis() as u64;
            let error = match result {
                Ok(v) => {
                    self.throttle.succeeded();
                    let bytes = req.upload_bytes.max(v.bytes());
                    self.emit(
                        &req,
                        Level::Debug,
                        v.status(),
                        Figures {
                            bytes,
                            ms,
                            attempt: attempts,
                        },
                        String::new(),
                    );
                    return Ok(v);
                }
                Err(e) => e,
            };
            self.emit(
                &req,
                Level::Debug,
                &error.code,
                Figures {
                    bytes: req.upload_bytes,
                    ms,
                    attempt: attempts,
                },
                error.message.clone(),
            );
            if error.kind == ErrorKind::Throttled {
                self.throttle.throttled(retry);
            }
            if !error.is_transient() || req.once {
                return Err(error);
            }
            let delay = backoff(retry, attempts, error.kind == ErrorKind::Throttled);
            let spent = started.elapsed();
            if attempts >= retry.max_attempts || spent + delay > retry.budget {
                let error = gave_up(error, attempts, spent);
                self.emit(
                    &req,
                    Level::Warn,
                    &error.code,
                    Figures {
                        bytes: 0,
                        ms: spent.as_millis() as u64,
                        attempt: attempts,
                    },
                    format!("gave up: {}", error.message),
                );
                return Err(error);
            }
            self.emit(
                &req,
                Level::Warn,
                &error.code,
                Figures {
                    bytes: 0,
                    ms: delay.as_millis() as u64,
                    attempt: attempts,
                },
                format!(
                    "retrying in {} ms ({})",
                    delay.as_millis(),
                    error.kind.as_str()
                ),
            );
            self.stats.retries.fetch_add(1, Relaxed);
            tokio::time::sleep(delay).await;
        }
    }
}

/// The last error of a request that used up its attempts or its time, saying so.
fn gave_up(mut e: Error, attempts: u32, spent: Duration) -> Error {
    e.message = format!(
        "{} (gave up after {attempts} attempts in {} ms)",
        e.message,
        spent.as_millis()
    );
    e
}

impl ObjectStore for RetryingStore {
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
            let req = Request {
                what: key,
                method: "GET",
                kind: Kind::Read,
                upload_bytes: 0,
                download_bytes: opts.range.map(|(s, e)| e.saturating_sub(s)),
                once: false,
            };
            self.run(req, || self.inner.get(key, opts.clone())).await
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let req = Request {
                what: key,
                method: "PUT",
                kind: Kind::Write(mode.clone()),
                upload_bytes: body.len() as u64,
                download_bytes: Some(0),
                // A create, or a conditional update, answered 412 by our own landed first send
                // would read as a lost race: the caller resends and decides.
                once: matches!(mode, PutMode::Create | PutMode::Update(_)),
            };
            self.run(req, || self.inner.put(key, body.clone(), mode.clone()))
                .await
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        Box::pin(async move {
            let req = Request {
                what: prefix,
                method: "LIST",
                kind: Kind::List,
                upload_bytes: 0,
                // A page of 1,000 keys is ~250 KB of XML.
                download_bytes: Some(256 << 10),
                once: false,
            };
            self.run(req, || self.inner.list(prefix, start_after, max_keys))
                .await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let req = Request::bodiless(key, "DELETE", Kind::Delete);
            self.run(req, || self.inner.delete(key)).await
        })
    }

    /// (The throttle already counted the failure the caller resends after: `run` saw it.)
    fn retry_delay(&self, attempt: u32, error: Option<&Error>) -> Duration {
        resend_delay(&self.policy.retry, attempt, error)
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        Box::pin(async move {
            let req = Request::bodiless(key, "HEAD", Kind::Read);
            self.run(req, || self.inner.head(key)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::faults::{s3_error, Action, FaultyStore, Op, Rule};

    fn fast() -> Policy {
        Policy {
            retry: RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(2),
                throttle_delay: Duration::from_millis(40),
                max_delay: Duration::from_millis(200),
                budget: Duration::from_secs(5),
            },
            timeouts: Timeouts {
                first_byte: Duration::from_millis(100),
                body_stall: Duration::from_millis(50),
                list: Duration::from_millis(100),
                rewrite: Duration::from_millis(100),
                ..Timeouts::default()
            },
        }
    }

    fn setup(policy: Policy) -> (Arc<FaultyStore>, RetryingStore, Arc<Stats>) {
        let faulty = Arc::new(FaultyStore::new());
        let stats = Arc::new(Stats::default());
        let store = RetryingStore::new(faulty.clone(), policy, stats.clone());
        (faulty, store, stats)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn transient_failures_are_retried_and_counted() {
        rt().block_on(async {
            let (faulty, store, stats) = setup(fast());
            for code in ["InternalError", "ECONNRESET", "ConditionalRequestConflict"] {
                faulty.add(Rule {
                    op: Some(Op::Put),
                    ..Rule::nth(0, Action::Fail(s3_error(code)))
                });
            }
            store
                .put("k", Bytes::from_static(b"v"), PutMode::Overwrite)
                .await
                .unwrap();
            assert_eq!(stats.retries.load(Relaxed), 3);
            assert_eq!(faulty.take_log().len(), 4);
        });
    }

    #[test]
    fn permanent_failures_and_creates_are_sent_once() {
        rt().block_on(async {
            let (faulty, store, stats) = setup(fast());
            faulty.add(Rule::from(0, Action::Fail(s3_error("AccessDenied"))));
            let e = store.get("k", GetOptions::default()).await.unwrap_err();
            assert_eq!(e.code, "AccessDenied");
            assert_eq!(e.kind, ErrorKind::Permanent);
            faulty.heal();
            faulty.add(Rule::from(0, Action::Fail(s3_error("InternalError"))));
            let e = store
                .put("r", Bytes::from_static(b"v"), PutMode::Create)
                .await
                .unwrap_err();
            assert!(e.is_transient());
            assert_eq!(faulty.take_log().len(), 2);
            assert_eq!(stats.retries.load(Relaxed), 0);
        });
    }

    #[test]
    fn a_stalled_request_is_cut_short_and_retried() {
        rt().block_on(async {
            let (faulty, store, stats) = setup(fast());
            store
                .put("k", Bytes::from(vec![1u8; 1000]), PutMode::Overwrite)
                .await
                .unwrap();
            for op in [Op::Get, Op::Put, Op::List, Op::Head, Op::Delete] {
                faulty.add(Rule {
                    op: Some(op),
                    ..Rule::nth(0, Action::Stall)
                });
            }
            let started = Instant::now();
            let range = GetOptions {
                range: Some((0, 10)),
                ..Default::default()
            };
            assert!(matches!(
                store.get("k", range).await.unwrap(),
                GetOutcome::Found(o) if o.body.len() == 10
            ));
            store
                .put("k", Bytes::from(vec![2u8; 1000]), PutMode::Overwrite)
                .await
                .unwrap();
            assert_eq!(store.list("", None, None).await.unwrap().objects.len(), 1);
            assert!(store.head("k").await.unwrap().is_some());
            store.delete("k").await.unwrap();
            assert_eq!(stats.retries.load(Relaxed), 5);
            // Five stalls, each abandoned after its attempt limit (~150 ms here), not hung.
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
        });
    }

    #[test]
    fn throttling_backs_off_the_whole_client_and_gives_up_after_max_attempts() {
        rt().block_on(async {
            let policy = fast();
            let (faulty, store, stats) = setup(policy.clone());
            faulty.add(Rule {
                key_part: "hot".into(),
                ..Rule::from(0, Action::Fail(s3_error("SlowDown")))
            });
            let started = Instant::now();
            let e = store.get("hot", GetOptions::default()).await.unwrap_err();
            let spent = started.elapsed();
            assert_eq!(e.kind, ErrorKind::Throttled);
            assert!(
                e.message.contains("gave up after 4 attempts"),
                "{}",
                e.message
            );
            // Backoffs of at least half of 40, 80, 160 ms.
            assert!(spent >= Duration::from_millis(140), "{spent:?}");
            assert_eq!(stats.retries.load(Relaxed), 3);
            // Another key of the same client waits out the throttle's pause before it is sent.
            let started = Instant::now();
            assert!(matches!(
                store.get("cold", GetOptions::default()).await.unwrap(),
                GetOutcome::NotFound
            ));
            assert!(
                started.elapsed() >= Duration::from_millis(40),
                "{:?}",
                started.elapsed()
            );
        });
    }

    #[test]
    fn the_time_budget_bounds_a_request() {
        rt().block_on(async {
            let mut policy = fast();
            policy.retry.max_attempts = 1000;
            policy.retry.budget = Duration::from_millis(300);
            let (faulty, store, _) = setup(policy);
            faulty.add(Rule::from(0, Action::Fail(s3_error("InternalError"))));
            let started = Instant::now();
            let e = store.head("k").await.unwrap_err();
            assert!(e.message.contains("gave up"), "{}", e.message);
            assert!(started.elapsed() < Duration::from_millis(400));
        });
    }

    #[test]
    fn a_resent_create_follows_the_policy() {
        let p = RetryPolicy::default();
        let throttled = s3_error("SlowDown");
        for attempt in 1..8 {
            let d = resend_delay(&p, attempt, Some(&throttled));
            assert!(d >= p.throttle_delay / 2 && d <= p.max_delay, "{d:?}");
            assert!(resend_delay(&p, attempt, None) <= p.max_delay);
        }
    }
}
