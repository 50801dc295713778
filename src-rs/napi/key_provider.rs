//! `options.encryption.keyProvider`: an async JS function that gives the key for a key id (from a
//! KMS, a secrets manager), called the first time a database needs that key.

use crate::error::{codes, Error, Result};
use crate::layout::versioned::seal::KeyProvider;
use napi::bindgen_prelude::{Buffer, Either, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use std::thread::ThreadId;
use std::time::Duration;
use zeroize::Zeroizing;

/// The JS function as napi holds it: given a key id, a promise that always fulfils, with the key,
/// `null` (a key it does not have) or why it failed (the TypeScript layer turns a throw into that
/// string). So a promise that fails on the Rust side is never the provider's answer: it is one
/// that napi dropped unsettled. Weak, so an open database does not keep the process alive.
pub type JsKeyProviderFn = ThreadsafeFunction<
    String,
    Promise<Option<Either<Buffer, String>>>,
    String,
    napi::Status,
    false,
    true,
>;

/// What napi's `Promise` future fails with when its sender was dropped (its then/catch callbacks
/// were finalized) before the promise settled: `futures`' `Canceled`, as text.
const PROMISE_DROPPED: &str = "oneshot canceled";

/// How long a key provider may take when none is given.
pub const DEFAULT_KEY_PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct JsKeyProvider {
    function: JsKeyProviderFn,
    /// The JS thread the function runs on: waiting for it there would wait forever.
    js_thread: ThreadId,
    timeout: Duration,
}

impl JsKeyProvider {
    /// Made on the JS thread (where options are read).
    pub fn new(function: JsKeyProviderFn, timeout: Duration) -> Self {
        JsKeyProvider {
            function,
            js_thread: std::thread::current().id(),
            timeout,
        }
    }
}

fn provider_error(id: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        codes::KEY_PROVIDER,
        format!("encryption.keyProvider('{id}') {why}"),
    )
}

impl KeyProvider for JsKeyProvider {
    fn fetch(&self, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if std::thread::current().id() == self.js_thread {
            return Err(Error::internal(
                "a key was needed on the JS thread, where the key provider cannot be waited for",
            ));
        }
        // The timer is made inside the runtime (where `wait` polls), not on this thread.
        let answer = crate::runtime::wait(async {
            let asked = async {
                match self.function.call_async(id.to_string()).await {
                    Ok(promise) => Ok(promise.await),
                    Err(e) => Err(e),
                }
            };
            tokio::time::timeout(self.timeout, asked).await
        })?;
        match answer {
            Err(_) => Err(provider_error(
                id,
                format!("did not answer within {} ms", self.timeout.as_millis()),
            )),
            Ok(Err(e)) => Err(provider_error(
                id,
                format!("could not be called: {}", e.reason),
            )),
            // napi drops its side of the promise when the promise is garbage-collected unsettled
            // (nothing held its resolve functions, so nothing can ever answer), or when the JS
            // environment shuts down. Said at once, not after the timeout. (The TypeScript layer
            // always fulfils, with a value napi reads.)
            Ok(Ok(Err(e))) if e.reason == PROMISE_DROPPED => Err(provider_error(
                id,
                "never answered: its promise was dropped unsettled (garbage-collected, or the JS \
                 environment is shutting down), so nothing can settle it",
            )),
            Ok(Ok(Err(e))) => Err(provider_error(
                id,
                format!("gave an answer that could not be read: {}", e.reason),
            )),
            Ok(Ok(Ok(None))) => Ok(None),
            Ok(Ok(Ok(Some(Either::A(key))))) => Ok(Some(Zeroizing::new(key.to_vec()))),
            // What the function threw, as the TypeScript layer put it (it checks the key's
            // length, so no key bytes are in it).
            Ok(Ok(Ok(Some(Either::B(why))))) => Err(provider_error(id, format!("failed: {why}"))),
        }
    }
}
