//! `options.encryption.keyProvider`: an async JS function that gives the key for a key id (from a
//! KMS, a secrets manager), called the first time a database needs that key.

use crate::error::{codes, Error, Result};
use crate::layout::versioned::seal::KeyProvider;
use napi::bindgen_prelude::{Buffer, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use std::thread::ThreadId;
use std::time::Duration;
use zeroize::Zeroizing;

/// The JS function as napi holds it: given a key id, a promise of the key or `null`. Weak, so an
/// open database does not keep the process alive.
pub type JsKeyProviderFn =
    ThreadsafeFunction<String, Promise<Option<Buffer>>, String, napi::Status, false, true>;

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
            let asked = async { self.function.call_async(id.to_string()).await?.await };
            tokio::time::timeout(self.timeout, asked).await
        })?;
        match answer {
            Err(_) => Err(provider_error(
                id,
                format!("did not answer within {} ms", self.timeout.as_millis()),
            )),
            // What the function threw, as JS gave it (the TypeScript layer checks the key's
            // length, so no key bytes are in it).
            Ok(Err(e)) => Err(provider_error(id, format!("failed: {}", e.reason))),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(key))) => Ok(Some(Zeroizing::new(key.to_vec()))),
        }
    }
}
