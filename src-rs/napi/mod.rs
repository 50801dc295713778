//! The napi boundary: classes and functions that convert JS values and delegate to the plain-Rust
//! layers. Errors become JS errors in `error.rs`, the one place that does it.

mod database;
mod error;
mod gc;
mod inspect;
mod key_provider;
mod options;
mod streams;
mod values;
