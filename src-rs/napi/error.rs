//! Our errors as JS errors. napi-rs sets a JS error's `code` from its status, which async
//! functions fix to napi's own statuses, so the code travels at the start of the message as
//! `[CODE|kind] message`; the TypeScript layer (`toError` in `src-ts/index.ts`) turns that into a
//! `SqliteS3Error` with `code` and `kind`.

use crate::error::Error;

pub fn to_js(e: Error) -> napi::Error {
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("[{}|{}] {}", e.code, e.kind.as_str(), e.message),
    )
}

pub trait IntoJs<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoJs<T> for crate::error::Result<T> {
    fn js(self) -> napi::Result<T> {
        self.map_err(to_js)
    }
}
