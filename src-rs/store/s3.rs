//! The object store over `aws-sdk-s3`: client configuration (the AWS SDKs' defaults, plus what
//! S3-compatible servers need), error mapping to codes and kinds, and the per-attempt timeouts
//! that `retry::Timeouts` sets (first byte, body stall). The SDK's own retries are off: requests
//! are retried in one place, `retry::RetryingStore`.

use super::retry::{timed_out, Policy, Timeouts};
use super::{
    BoxFuture, GetOptions, GetOutcome, ListPage, Object, ObjectMeta, ObjectStore, PutMode,
};
use crate::error::{Error, ErrorKind, Result};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::config::{
    Credentials, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;

/// S3 settings given by the user; anything unset defaults the way the AWS SDKs do.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    pub credentials: Option<StaticCredentials>,
    /// Retries and timeouts (`store::retry`).
    pub policy: Policy,
    /// Server-side encryption headers sent with every request that takes them.
    pub encryption: ServerSideEncryption,
}

/// S3's server-side encryption, as buckets that require it want it: on every PUT of every
/// object (blocks, roots, segments, journals, imports, GC's clock probe, the conditional-write
/// probe), and for SSE-C the same customer key on every GET and HEAD as well.
#[derive(Debug, Clone, Default)]
pub struct ServerSideEncryption {
    /// `AES256`, `aws:kms` or `aws:kms:dsse` (`x-amz-server-side-encryption`).
    pub algorithm: Option<String>,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
    pub customer_key: Option<CustomerKey>,
}

/// An SSE-C key: 32 bytes, sent base64-encoded with its MD5 (S3 checks it arrived intact).
#[derive(Clone)]
pub struct CustomerKey {
    key: String,
    md5: String,
}

impl CustomerKey {
    pub fn new(key: &[u8]) -> Result<CustomerKey> {
        use md5::Digest;
        if key.len() != 32 {
            return Err(Error::invalid(format!(
                "s3.sseCustomerKey must be 32 bytes (AES-256), got {}",
                key.len()
            )));
        }
        Ok(CustomerKey {
            key: aws_smithy_types::base64::encode(key),
            md5: aws_smithy_types::base64::encode(md5::Md5::digest(key)),
        })
    }
}

/// A GET, HEAD or PUT request builder with the SSE-C headers when there is a customer key (the
/// three builders are different types with the same setters).
macro_rules! with_customer_key {
    ($req:expr, $key:expr) => {
        match $key {
            Some(c) => $req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&c.key)
                .sse_customer_key_md5(&c.md5),
            None => $req,
        }
    };
}

// Never print the key, even in debug output.
impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey { .. }")
    }
}

#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

// Never print secrets, even in debug output.
impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticCredentials { .. }")
    }
}

pub struct S3Store {
    client: Client,
    bucket: String,
    /// The endpoint in effect (`None`: AWS), part of the store's identity.
    endpoint: Option<String>,
    timeouts: Timeouts,
    encryption: ServerSideEncryption,
}

/// The endpoint in effect: the option, else the SDKs' environment variables.
fn endpoint_from(config: &S3Config) -> Option<String> {
    config
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|e| !e.is_empty())
}

impl S3Store {
    pub async fn connect(bucket: &str, config: &S3Config) -> Result<S3Store> {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // Attempts are timed here (first byte, body stall) and retried by `RetryingStore`: the
        // SDK's retries, attempt timeout and stalled-stream protection would be a second policy.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.policy.timeouts.connect)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(timeouts);
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(c) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "sqlite-s3vfs options",
            ));
        }
        let sdk = loader.load().await;
        let endpoint = endpoint_from(config);
        // Third-party servers mishandle the SDK's default streaming checksums (they store the
        // aws-chunked framing, or reject it): send checksums only where the API requires them.
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .force_path_style(config.force_path_style.unwrap_or(endpoint.is_some()));
        if let Some(endpoint) = &endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        if sdk.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            endpoint,
            timeouts: config.policy.timeouts.clone(),
            encryption: config.encryption.clone(),
        })
    }

    /// Creates the bucket (for tests against a local server).
    #[cfg(test)]
    pub async fn create_bucket(&self) -> Result<()> {
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Error::internal(format!("CreateBucket: {}", DisplayErrorContext(&e))))
    }

    /// Sends a request, giving up when no answer starts within `limit`.
    async fn timed<T>(
        &self,
        key: &str,
        limit: std::time::Duration,
        send: impl std::future::Future<Output = T>,
    ) -> Result<T> {
        tokio::time::timeout(limit, send)
            .await
            .map_err(|_| timed_out(&self.place(key), limit))
    }

    /// Reads a response body, giving up when it stops flowing for the body-stall limit.
    async fn read_body(&self, key: &str, mut body: ByteStream, len: Option<i64>) -> Result<Bytes> {
        let stall = self.timeouts.body_stall;
        let mut out = bytes::BytesMut::with_capacity(len.unwrap_or(0).clamp(0, 64 << 20) as usize);
        loop {
            match tokio::time::timeout(stall, body.next()).await {
                Err(_) => {
                    return Err(Error::transient(
                        "ETIMEDOUT",
                        format!(
                            "{}: the body stopped flowing for {} ms after {} bytes",
                            self.place(key),
                            stall.as_millis(),
                            out.len()
                        ),
                    ))
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => out.extend_from_slice(&chunk),
                Ok(Some(Err(e))) => {
                    return Err(Error::transient(
                        network_code(&e).unwrap_or_else(|| "ECONNRESET".into()),
                        format!("{}: reading the body failed: {e}", self.place(key)),
                    ))
                }
            }
        }
        // A connection closed early can end the stream without an error: a short body is
        // never taken for the object.
        if let Some(len) = len.filter(|l| *l >= 0 && *l as usize != out.len()) {
            return Err(Error::transient(
                "ECONNRESET",
                format!(
                    "{}: the body ended after {} of {len} bytes",
                    self.place(key),
                    out.len()
                ),
            ));
        }
        Ok(out.freeze())
    }

    fn place(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

/// What an SDK error means to us: its S3 code (or a network error name) and HTTP status.
struct Failure {
    code: String,
    status: Option<u16>,
    message: String,
    kind: ErrorKind,
}

/// What an S3 error answer means: retry it, back off, or give up.
fn kind_of_answer(status: u16, code: &str) -> ErrorKind {
    match (status, code) {
        (503, _) | (429, _) | (_, "SlowDown" | "Throttling" | "TooManyRequests") => {
            ErrorKind::Throttled
        }
        // Not implemented, HTTP version: the same request fails the same way.
        (501 | 505, _) => ErrorKind::Permanent,
        (500..=599, _) | (408, _) => ErrorKind::Transient,
        // A conditional request raced another one on the same key: S3 asks for a retry.
        (409, "ConditionalRequestConflict" | "OperationAborted" | "Conflict") => {
            ErrorKind::Transient
        }
        (400, "RequestTimeout") | (403, "RequestTimeTooSkewed") => ErrorKind::Transient,
        (412, _) => ErrorKind::Conflict,
        _ => ErrorKind::Permanent,
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Failure {
    let message = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se
                .err()
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| match status {
                    304 => "NotModified".into(),
                    400 => "BadRequest".into(),
                    403 => "AccessDenied".into(),
                    404 => "NotFound".into(),
                    409 => "Conflict".into(),
                    412 => "PreconditionFailed".into(),
                    s => format!("HTTP_{s}"),
                });
            let message = se
                .err()
                .message()
                .map(|m| format!("{code}: {m}"))
                .unwrap_or_else(|| format!("{code} (HTTP {status})"));
            Failure {
                kind: kind_of_answer(status, &code),
                code,
                status: Some(status),
                message,
            }
        }
        SdkError::TimeoutError(_) => Failure {
            code: "ETIMEDOUT".into(),
            status: None,
            message,
            kind: ErrorKind::Transient,
        },
        // The request could not be built (bad input, no credentials): sending it again fails
        // the same way.
        SdkError::ConstructionFailure(_) => Failure {
            code: network_code(&err).unwrap_or_else(|| "ERR_S3_REQUEST".into()),
            status: None,
            message,
            kind: ErrorKind::Permanent,
        },
        SdkError::DispatchFailure(d) if d.is_user() => Failure {
            code: network_code(&err).unwrap_or_else(|| "ERR_S3_REQUEST".into()),
            status: None,
            message,
            kind: ErrorKind::Permanent,
        },
        // Connection refused or reset, a response cut short or unparsable.
        _ => {
            let code = network_code(&err).unwrap_or_else(|| "ERR_S3_REQUEST".into());
            let kind = if code == "CredentialsProviderError" {
                ErrorKind::Permanent
            } else {
                ErrorKind::Transient
            };
            Failure {
                code,
                status: None,
                message,
                kind,
            }
        }
    }
}

/// Finds an I/O error in the source chain and names it the way Node does (`ECONNREFUSED`, ...).
fn network_code(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let name = match io.kind() {
                ConnectionRefused => "ECONNREFUSED",
                ConnectionReset => "ECONNRESET",
                ConnectionAborted => "ECONNABORTED",
                TimedOut => "ETIMEDOUT",
                NotFound => "ENOTFOUND",
                AddrNotAvailable => "EADDRNOTAVAIL",
                BrokenPipe => "EPIPE",
                _ => "ERR_NETWORK",
            };
            return Some(name.into());
        }
        let text = e.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return Some("ENOTFOUND".into());
        }
        if text.contains("Connection refused") {
            return Some("ECONNREFUSED".into());
        }
        if text.contains("no credentials") || text.contains("credentials provider") {
            return Some("CredentialsProviderError".into());
        }
        cur = e.source();
    }
    None
}

impl Failure {
    /// Only a missing *key* means "not found": other 404s (NoSuchBucket, or versitygw's
    /// XAdminUserNotFound for an unknown access key) are errors. HEAD has no body, so its 404
    /// reads as `NotFound`.
    fn is_missing_key(&self) -> bool {
        self.status == Some(404) && matches!(self.code.as_str(), "NoSuchKey" | "NotFound")
    }

    fn into_error(self, place: String) -> Error {
        Error::new(self.code, self.message)
            .with_kind(self.kind)
            .context(place)
    }
}

fn ms(t: Option<&aws_smithy_types::DateTime>) -> Option<i64> {
    t.and_then(|t| t.to_millis().ok())
}

impl ObjectStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    fn identity(&self) -> String {
        // The same endpoint spelled with a trailing slash or in capitals is the same store.
        let endpoint = self
            .endpoint
            .as_deref()
            .map(|e| e.trim_end_matches('/').to_ascii_lowercase());
        format!(
            "{} s3://{}",
            endpoint.as_deref().unwrap_or("aws"),
            self.bucket
        )
    }

    fn cache_scope(&self) -> String {
        match &self.encryption.customer_key {
            // Part of the key's MD5 (which S3 receives with every request): enough to keep apart
            // the objects of different SSE-C keys, nothing to recover the key from.
            Some(c) => format!("{} sse-c:{}", self.identity(), &c.md5[..12]),
            None => self.identity(),
        }
    }

    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>> {
        Box::pin(async move {
            let mut req = self.client.get_object().bucket(&self.bucket).key(key);
            req = with_customer_key!(req, &self.encryption.customer_key);
            if let Some((start, end)) = opts.range {
                if end <= start {
                    return Ok(GetOutcome::Found(Object {
                        body: Bytes::new(),
                        etag: None,
                        last_modified_ms: None,
                    }));
                }
                req = req.range(format!("bytes={}-{}", start, end - 1));
            }
            if let Some(etag) = &opts.if_none_match {
                req = req.if_none_match(etag);
            }
            match self
                .timed(key, self.timeouts.first_byte, req.send())
                .await?
            {
                Ok(resp) => {
                    let etag = resp.e_tag().map(str::to_string);
                    let last_modified_ms = ms(resp.last_modified());
                    let len = resp.content_length();
                    let body = self.read_body(key, resp.body, len).await?;
                    Ok(GetOutcome::Found(Object {
                        body,
                        etag,
                        last_modified_ms,
                    }))
                }
                Err(err) => {
                    let f = classify(err);
                    if f.is_missing_key() {
                        return Ok(GetOutcome::NotFound);
                    }
                    match f.status {
                        Some(304) => Ok(GetOutcome::NotModified),
                        // A range that starts at or past the end of the object.
                        Some(416) => Ok(GetOutcome::Found(Object {
                            body: Bytes::new(),
                            etag: None,
                            last_modified_ms: None,
                        })),
                        _ => Err(f.into_error(self.place(key))),
                    }
                }
            }
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let len = body.len() as i64;
            let upload_bytes = body.len() as u64;
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_length(len)
                .body(ByteStream::from(body));
            let e = &self.encryption;
            if let Some(a) = &e.algorithm {
                req = req.server_side_encryption(a.as_str().into());
            }
            if let Some(id) = &e.kms_key_id {
                req = req.ssekms_key_id(id);
            }
            if let Some(on) = e.bucket_key_enabled {
                req = req.bucket_key_enabled(on);
            }
            req = with_customer_key!(req, &e.customer_key);
            req = match &mode {
                PutMode::Overwrite | PutMode::Rewrite => req,
                PutMode::Create => req.if_none_match("*"),
                PutMode::Update(etag) => req.if_match(etag),
            };
            let limit = self.timeouts.write_limit(&mode, upload_bytes);
            match self.timed(key, limit, req.send()).await? {
                Ok(resp) => Ok(resp.e_tag().map(str::to_string)),
                Err(err) => {
                    let mut f = classify(err);
                    // If-Match on a missing key: AWS answers 404, some servers 412. Both mean
                    // the precondition failed.
                    if matches!(mode, PutMode::Create | PutMode::Update(_))
                        && (f.status == Some(412) || f.is_missing_key())
                    {
                        f.code = "PreconditionFailed".into();
                        f.kind = ErrorKind::Conflict;
                    }
                    Err(f.into_error(self.place(key)))
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
        Box::pin(async move {
            let mut req = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix);
            if let Some(after) = start_after {
                req = req.start_after(after);
            }
            if let Some(max) = max_keys {
                req = req.max_keys(max as i32);
            }
            let resp = self
                .timed(prefix, self.timeouts.list_limit(max_keys), req.send())
                .await?
                .map_err(|e| classify(e).into_error(self.place(prefix)))?;
            let objects: Vec<ObjectMeta> = resp
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(ObjectMeta {
                        key: o.key()?.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        last_modified_ms: ms(o.last_modified()),
                    })
                })
                .collect();
            let truncated = resp.is_truncated().unwrap_or(false);
            // Same paging as every store: a truncated page names where the next one starts,
            // whether or not the caller limited its size.
            let next_start_after = if truncated {
                objects.last().map(|o| o.key.clone())
            } else {
                None
            };
            Ok(ListPage {
                objects,
                next_start_after,
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let req = self.client.delete_object().bucket(&self.bucket).key(key);
            match self.timed(key, self.timeouts.rewrite, req.send()).await? {
                Ok(_) => Ok(()),
                Err(err) => {
                    let f = classify(err);
                    if f.is_missing_key() {
                        return Ok(());
                    }
                    Err(f.into_error(self.place(key)))
                }
            }
        })
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        Box::pin(async move {
            let req = with_customer_key!(
                self.client.head_object().bucket(&self.bucket).key(key),
                &self.encryption.customer_key
            );
            match self
                .timed(key, self.timeouts.first_byte, req.send())
                .await?
            {
                Ok(resp) => Ok(Some(ObjectMeta {
                    key: key.to_string(),
                    size: resp.content_length().unwrap_or(0).max(0) as u64,
                    last_modified_ms: ms(resp.last_modified()),
                })),
                Err(err) => {
                    let f = classify(err);
                    if f.is_missing_key() {
                        return Ok(None);
                    }
                    Err(f.into_error(self.place(key)))
                }
            }
        })
    }
}
