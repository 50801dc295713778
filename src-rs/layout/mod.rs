//! How files are named and committed in the bucket.

pub mod compat;

use crate::error::{Error, Result};

/// Checks a user-given key prefix: non-empty, no leading or trailing `/`, no empty segment, no
/// control characters, and short enough that block keys stay under S3's 1024-byte key limit.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let problem = if prefix.is_empty() {
        Some("must not be empty")
    } else if prefix.starts_with('/') || prefix.ends_with('/') {
        Some("must not start or end with '/'")
    } else if prefix.contains("//") {
        Some("must not contain an empty path segment ('//')")
    } else if prefix.chars().any(|c| c.is_control()) {
        Some("must not contain control characters")
    } else if prefix.len() > 900 {
        Some("must be at most 900 bytes")
    } else {
        None
    };
    match problem {
        Some(why) => Err(Error::invalid(format!(
            "invalid prefix {prefix:?}: it {why}"
        ))),
        None => Ok(()),
    }
}

pub fn validate_bucket(bucket: &str) -> Result<()> {
    if bucket.is_empty() || bucket.contains('/') || bucket.len() > 255 {
        return Err(Error::invalid(format!("invalid bucket name {bucket:?}")));
    }
    Ok(())
}
