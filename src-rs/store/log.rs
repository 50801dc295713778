//! The request log (`options.logger`, `DEBUG=sqlite-s3vfs`): one event per attempt of every
//! request, at debug level, and one per retry and give-up at warn — written by
//! `retry::RetryingStore`, the one place every request goes through. Events carry the method,
//! key, outcome, bytes, milliseconds and attempt number; never a credential, a signature or a
//! header (the store never sees them: the SDK signs below it).

use super::{GetOutcome, ListPage, ObjectMeta};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Warn,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warn",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestEvent {
    pub level: Level,
    /// GET, PUT, LIST, DELETE or HEAD.
    pub method: &'static str,
    /// The key (or, for LIST, the prefix).
    pub key: String,
    /// `200`, `304`, `404` for answers, else the error's code (`SlowDown`, `ETIMEDOUT`, ...).
    pub status: String,
    /// Bytes sent (PUT) or received (GET).
    pub bytes: u64,
    /// This attempt's time (for a retry event: the delay before the next attempt).
    pub ms: u64,
    pub attempt: u32,
    /// What happened, in words.
    pub message: String,
}

/// Where events go: the JS logger (through a thread-safe function) or a test's collector.
#[derive(Clone)]
pub struct RequestLog(pub Arc<dyn Fn(RequestEvent) + Send + Sync>);

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLog")
    }
}

/// What an answer says for the log: its status and the bytes it brought.
pub trait Answer {
    fn status(&self) -> &'static str {
        "200"
    }
    fn bytes(&self) -> u64 {
        0
    }
}

impl Answer for GetOutcome {
    fn status(&self) -> &'static str {
        match self {
            GetOutcome::Found(_) => "200",
            GetOutcome::NotModified => "304",
            GetOutcome::NotFound => "404",
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            GetOutcome::Found(o) => o.body.len() as u64,
            _ => 0,
        }
    }
}

impl Answer for Option<String> {}
impl Answer for ListPage {}
impl Answer for () {}
impl Answer for Option<ObjectMeta> {
    fn status(&self) -> &'static str {
        if self.is_some() {
            "200"
        } else {
            "404"
        }
    }
}
