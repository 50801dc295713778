//! How files are named and committed in the bucket.

pub mod compat;
pub mod versioned;

use crate::error::{Error, Result};
use crate::store::{first_key_where, ObjectStore};

/// The two ways a database can be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// The Python library's format: blocks rewritten in place, SQLite's journal in the store.
    Compat,
    /// Atomic versions published by a conditional create (the default).
    Versioned,
}

/// Block size of a new `versioned` database (chosen from the benchmark: see the README).
pub const VERSIONED_BLOCK_SIZE: u64 = 256 << 10;
/// Block size of a `sqlite-s3vfs` database: the Python library's default, so that databases
/// are interchangeable without options (this layout does not record its block size).
pub const COMPAT_BLOCK_SIZE: u64 = 4096;

impl LayoutKind {
    /// The block size used when the options give none.
    pub fn default_block_size(self) -> u64 {
        match self {
            LayoutKind::Compat => COMPAT_BLOCK_SIZE,
            LayoutKind::Versioned => VERSIONED_BLOCK_SIZE,
        }
    }

    pub fn parse(name: &str) -> Result<LayoutKind> {
        match name {
            "versioned" => Ok(LayoutKind::Versioned),
            "sqlite-s3vfs" => Ok(LayoutKind::Compat),
            other => Err(Error::invalid(format!(
                "unknown layout {other:?}: use 'versioned' or 'sqlite-s3vfs'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::Compat => "sqlite-s3vfs",
            LayoutKind::Versioned => "versioned",
        }
    }
}

/// What a prefix holds, found with one `LIST P/ max-keys=1` in the usual case (the versioned
/// layout's roots sort before everything else, so the same request names its newest version).
pub enum Found {
    Nothing,
    Compat,
    /// A versioned database; its newest version when one was published.
    Versioned(Option<u64>),
}

/// Looks for the first key under `P/` that is one of ours. Keys we did not write (a folder
/// marker `P/`, a `P/!README`, a `P/.keep`) are skipped: "nothing here" is only ever concluded
/// from a listing with none of our keys in it.
pub async fn detect(store: &dyn ObjectStore, prefix: &str) -> Result<Found> {
    let names = versioned::Names::new(prefix);
    let compat = compat::BlockKeys::new(prefix);
    let found = first_key_where(store, &format!("{prefix}/"), |key| {
        if let Some(v) = names.parse_root(key) {
            return Some(Found::Versioned(Some(v)));
        }
        if names.parse_block(key).is_some() || names.parse_segment(key).is_some() {
            return Some(Found::Versioned(None));
        }
        compat.parse(key).map(|_| Found::Compat)
    })
    .await?;
    // Roots sort before blocks and segments: a block found first means no root was listed.
    Ok(found.unwrap_or(Found::Nothing))
}

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
