//! Options as JS passes them (already defaulted and checked by the TypeScript layer), turned into
//! the connection layer's configuration.

use super::key_provider::{JsKeyProvider, JsKeyProviderFn, DEFAULT_KEY_PROVIDER_TIMEOUT};
use crate::connection::StoreConfig;
use crate::connection::{
    DatabaseConfig, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_DIR_BYTES, DEFAULT_CONCURRENCY,
    DEFAULT_MEMORY_LIMIT, DEFAULT_READ_AHEAD,
};
use crate::error::{Error, Result};
use crate::layout::versioned::codec::{Compression, DEFAULT_ZSTD_LEVEL};
use crate::layout::versioned::seal::Keyring;
use crate::layout::LayoutKind;
use crate::store::log::{RequestEvent, RequestLog};
use crate::store::retry::{Policy, RetryPolicy, Timeouts};
use crate::store::s3::{CustomerKey, S3Config, ServerSideEncryption, StaticCredentials};
use crate::vfs::{CompatOptions, VersionedOptions, DEFAULT_HOT_JOURNAL_AGE};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use std::time::Duration;

#[napi(object)]
pub struct JsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

#[napi(object)]
pub struct JsS3Options {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub credentials: Option<JsCredentials>,
    pub max_attempts: Option<u32>,
    pub retry: Option<JsRetry>,
    pub timeouts: Option<JsTimeouts>,
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    pub sse_customer_key: Option<napi::bindgen_prelude::Buffer>,
}

/// `options.s3.retry` (milliseconds).
#[napi(object)]
pub struct JsRetry {
    pub max_attempts: Option<u32>,
    pub base_delay_ms: Option<f64>,
    pub throttle_delay_ms: Option<f64>,
    pub max_delay_ms: Option<f64>,
    pub total_ms: Option<f64>,
}

/// `options.s3.timeouts` (milliseconds; `minUploadRate` in bytes per second).
#[napi(object)]
pub struct JsTimeouts {
    pub connect_ms: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub body_stall_ms: Option<f64>,
    pub min_upload_rate: Option<f64>,
    pub list_ms: Option<f64>,
    pub rewrite_ms: Option<f64>,
}

/// `options.encryption`: the current key (or a provider of keys by id) and the rotated-out keys
/// that still open objects.
#[napi(object, object_to_js = false)]
pub struct JsEncryption {
    pub key: Option<napi::bindgen_prelude::Buffer>,
    pub key_id: Option<String>,
    pub previous_keys: Option<Vec<JsPreviousKey>>,
    /// Called (through the TypeScript layer, which checks what it gives) for a key not held yet.
    #[napi(ts_type = "(keyId: string) => Promise<Buffer | string | null>")]
    pub key_provider: Option<JsKeyProviderFn>,
    pub key_provider_timeout_ms: Option<f64>,
}

#[napi(object)]
pub struct JsPreviousKey {
    pub key_id: String,
    pub key: napi::bindgen_prelude::Buffer,
}

/// The key id of `options.encryption` when none is given.
pub const DEFAULT_KEY_ID: &str = "default";

fn keyring(e: JsEncryption) -> Result<std::sync::Arc<Keyring>> {
    let previous: Vec<(String, &[u8])> = e
        .previous_keys
        .iter()
        .flatten()
        .map(|p| (p.key_id.clone(), &p.key[..]))
        .collect();
    let id = e.key_id.as_deref().unwrap_or(DEFAULT_KEY_ID);
    let ring = match (&e.key, e.key_provider) {
        (Some(key), None) => Keyring::new(id, key, &previous)?,
        (None, Some(function)) => {
            let timeout = e
                .key_provider_timeout_ms
                .map(|ms| Duration::from_millis(ms.max(1.0) as u64))
                .unwrap_or(DEFAULT_KEY_PROVIDER_TIMEOUT);
            let provider = JsKeyProvider::new(function, timeout);
            Keyring::with_provider(id, Some(Box::new(provider)), &previous)?
        }
        _ => {
            return Err(Error::invalid(
                "options.encryption takes a key or a keyProvider (one of them)",
            ))
        }
    };
    Ok(std::sync::Arc::new(ring))
}

/// `options.compression` and `options.compressionLevel`.
fn compression(name: Option<&str>, level: Option<f64>) -> Result<Option<Compression>> {
    let level = match level {
        None => DEFAULT_ZSTD_LEVEL,
        Some(l) if l.fract() == 0.0 && (1.0..=22.0).contains(&l) => l as i32,
        Some(l) => {
            return Err(Error::invalid(format!(
                "compressionLevel must be an integer from 1 to 22, got {l}"
            )))
        }
    };
    match name {
        None => Ok(None),
        Some("none") => Ok(Some(Compression::None)),
        Some("zstd") => Ok(Some(Compression::Zstd { level })),
        Some(other) => Err(Error::invalid(format!(
            "compression must be 'none' or 'zstd', got '{other}'"
        ))),
    }
}

fn millis(ms: Option<f64>, default: Duration) -> Duration {
    ms.map(|m| Duration::from_millis(m.max(0.0) as u64))
        .unwrap_or(default)
}

fn policy(s: &JsS3Options) -> Policy {
    let (dr, dt) = (RetryPolicy::default(), Timeouts::default());
    let r = s.retry.as_ref();
    let t = s.timeouts.as_ref();
    Policy {
        retry: RetryPolicy {
            max_attempts: r
                .and_then(|r| r.max_attempts)
                .or(s.max_attempts)
                .unwrap_or(dr.max_attempts)
                .max(1),
            base_delay: millis(r.and_then(|r| r.base_delay_ms), dr.base_delay),
            throttle_delay: millis(r.and_then(|r| r.throttle_delay_ms), dr.throttle_delay),
            max_delay: millis(r.and_then(|r| r.max_delay_ms), dr.max_delay),
            budget: millis(r.and_then(|r| r.total_ms), dr.budget),
        },
        timeouts: Timeouts {
            connect: millis(t.and_then(|t| t.connect_ms), dt.connect),
            first_byte: millis(t.and_then(|t| t.first_byte_ms), dt.first_byte),
            body_stall: millis(t.and_then(|t| t.body_stall_ms), dt.body_stall),
            list: millis(t.and_then(|t| t.list_ms), dt.list),
            rewrite: millis(t.and_then(|t| t.rewrite_ms), dt.rewrite),
            min_upload_rate: t
                .and_then(|t| t.min_upload_rate)
                .map(|r| r.max(1.0) as u64)
                .unwrap_or(dt.min_upload_rate),
        },
    }
}

/// One request-log event, as the JS logger receives it (see `store::log`).
#[napi(object)]
pub struct JsLogEvent {
    pub level: String,
    pub method: String,
    pub key: String,
    pub status: String,
    pub bytes: f64,
    pub ms: f64,
    pub attempt: u32,
    pub message: String,
}

#[napi(object, object_to_js = false)]
pub struct JsOptions {
    pub block_size: Option<u32>,
    pub cache_size: Option<f64>,
    pub concurrency: Option<u32>,
    pub read_ahead: Option<u32>,
    pub cache_dir: Option<String>,
    pub cache_dir_size: Option<f64>,
    pub s3: Option<JsS3Options>,
    pub layout: Option<String>,
    pub version: Option<f64>,
    pub max_staleness: Option<f64>,
    pub single_writer: Option<bool>,
    pub hot_journal_ms: Option<f64>,
    pub memory_limit: Option<f64>,
    /// `'none'` or `'zstd'` (versioned layout; unset: as the database records).
    pub compression: Option<String>,
    pub encryption: Option<JsEncryption>,
    pub compression_level: Option<f64>,
    pub store: Option<JsStore>,
    /// Receives the request log (set by the TypeScript layer from `options.logger` or `DEBUG`).
    pub log: Option<
        ThreadsafeFunction<
            JsLogEvent,
            napi::bindgen_prelude::Unknown<'static>,
            JsLogEvent,
            napi::Status,
            false,
            true,
        >,
    >,
}

/// `options.store`: where the objects live instead of S3.
#[napi(object)]
pub struct JsStore {
    /// A local directory (buckets are its folders).
    pub dir: Option<String>,
}

pub fn config(
    bucket: String,
    prefix: String,
    options: Option<JsOptions>,
) -> crate::error::Result<DatabaseConfig> {
    let o = options.unwrap_or(JsOptions {
        block_size: None,
        cache_size: None,
        concurrency: None,
        read_ahead: None,
        cache_dir: None,
        cache_dir_size: None,
        s3: None,
        layout: None,
        version: None,
        max_staleness: None,
        single_writer: None,
        hot_journal_ms: None,
        memory_limit: None,
        compression: None,
        compression_level: None,
        encryption: None,
        store: None,
        log: None,
    });
    let layout = o.layout.as_deref().map(LayoutKind::parse).transpose()?;
    let versioned = VersionedOptions {
        max_staleness: Duration::from_millis(o.max_staleness.unwrap_or(0.0).max(0.0) as u64),
        time_travel: o.version.map(|v| v.max(0.0) as u64),
        single_writer: o.single_writer.unwrap_or(false),
        compression: compression(o.compression.as_deref(), o.compression_level)?,
        encryption: o.encryption.map(keyring).transpose()?,
    };
    let s3 = match o.s3 {
        None => S3Config::default(),
        Some(s) => S3Config {
            policy: policy(&s),
            encryption: ServerSideEncryption {
                algorithm: s.server_side_encryption,
                kms_key_id: s.sse_kms_key_id,
                bucket_key_enabled: s.bucket_key_enabled,
                customer_key: s
                    .sse_customer_key
                    .as_deref()
                    .map(CustomerKey::new)
                    .transpose()?,
            },
            region: s.region,
            endpoint: s.endpoint,
            force_path_style: s.force_path_style,
            credentials: s.credentials.map(|c| StaticCredentials {
                access_key_id: c.access_key_id,
                secret_access_key: c.secret_access_key,
                session_token: c.session_token,
            }),
        },
    };
    Ok(DatabaseConfig {
        bucket,
        prefix,
        store: match o.store.and_then(|s| s.dir) {
            Some(dir) => StoreConfig::Dir(dir.into()),
            None => StoreConfig::S3(Box::new(s3)),
        },
        block_size: o.block_size.map(u64::from),
        cache_bytes: o
            .cache_size
            .map(|c| c.max(0.0) as usize)
            .unwrap_or(DEFAULT_CACHE_BYTES),
        concurrency: o
            .concurrency
            .map(|c| c as usize)
            .unwrap_or(DEFAULT_CONCURRENCY),
        read_ahead: o.read_ahead.map(u64::from).unwrap_or(DEFAULT_READ_AHEAD),
        cache_dir: o.cache_dir.map(std::path::PathBuf::from),
        cache_dir_bytes: o
            .cache_dir_size
            .map(|c| c.max(0.0) as u64)
            .unwrap_or(DEFAULT_CACHE_DIR_BYTES),
        memory_limit: o
            .memory_limit
            .map(|m| m.max(0.0) as usize)
            .unwrap_or(DEFAULT_MEMORY_LIMIT),
        log: o.log.map(|callback| {
            let callback = std::sync::Arc::new(callback);
            RequestLog(std::sync::Arc::new(move |e: RequestEvent| {
                let _ = callback.call(
                    JsLogEvent {
                        level: e.level.as_str().to_string(),
                        method: e.method.to_string(),
                        key: e.key,
                        status: e.status,
                        bytes: e.bytes as f64,
                        ms: e.ms as f64,
                        attempt: e.attempt,
                        message: e.message,
                    },
                    ThreadsafeFunctionCallMode::NonBlocking,
                );
            }))
        }),
        layout,
        versioned,
        compat: CompatOptions {
            hot_journal_age: o
                .hot_journal_ms
                .map(|ms| Duration::from_millis(ms.max(0.0) as u64))
                .unwrap_or(DEFAULT_HOT_JOURNAL_AGE),
        },
    })
}

/// The defaults of the options that tune I/O, so JS (and the benchmark) can show them.
#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct JsDefaults {
    /// Of a new database in the versioned layout.
    pub block_size: u32,
    /// Of the sqlite-s3vfs layout (the Python library's default).
    pub compat_block_size: u32,
    pub cache_size: f64,
    pub concurrency: u32,
    pub read_ahead: u32,
    pub memory_limit: f64,
}

#[cfg_attr(test, allow(dead_code))]
#[napi]
pub fn defaults() -> JsDefaults {
    JsDefaults {
        block_size: crate::layout::VERSIONED_BLOCK_SIZE as u32,
        compat_block_size: crate::layout::COMPAT_BLOCK_SIZE as u32,
        cache_size: DEFAULT_CACHE_BYTES as f64,
        concurrency: DEFAULT_CONCURRENCY as u32,
        read_ahead: DEFAULT_READ_AHEAD as u32,
        memory_limit: DEFAULT_MEMORY_LIMIT as f64,
    }
}
