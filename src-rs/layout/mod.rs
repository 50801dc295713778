//! How files are named and committed in the bucket.

pub mod block_map;
pub mod compat;
pub mod import;
pub mod inspect;
pub mod versioned;

use crate::error::{Error, Result};
use crate::store::{first_key_where, first_key_within, ObjectStore, Searched};

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
    let ours = |key: &str| {
        if let Some(v) = names.parse_root(key) {
            return Some(Found::Versioned(Some(v)));
        }
        if names.parse_block(key).is_some() || names.parse_segment(key).is_some() {
            return Some(Found::Versioned(None));
        }
        compat.parse(key).map(|_| Found::Compat)
    };
    // Roots sort before blocks and segments: a block found first means no root was listed.
    match first_key_within(store, &format!("{prefix}/"), &ours, 3).await? {
        Searched::Found(found) => return Ok(found),
        Searched::None => return Ok(Found::Nothing),
        Searched::GaveUp => {}
    }
    // Thousands of foreign keys under the prefix: look where our keys would be instead.
    if let Some(v) = first_key_where(store, &names.roots_dir(), |k| names.parse_root(k)).await? {
        return Ok(Found::Versioned(Some(v)));
    }
    for dir in [names.blocks_dir(), names.segments_dir()] {
        if first_key_where(store, &dir, |k| ours(k)).await?.is_some() {
            return Ok(Found::Versioned(None));
        }
    }
    // Every database of the Python library's layout has block 0.
    let key0 = compat.key(0);
    if first_key_where(store, &key0, |k| (k == key0).then_some(()))
        .await?
        .is_some()
    {
        return Ok(Found::Compat);
    }
    Ok(Found::Nothing)
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
    // S3 Express One Zone directory buckets (`name--zone--x-s3`) list keys in no particular
    // order: detection, the head of the versioned layout and GC all rely on ordered listings.
    if bucket.ends_with("--x-s3") {
        return Err(Error::new(
            crate::error::codes::UNSUPPORTED,
            format!(
                "{bucket:?} is an S3 Express directory bucket, whose listings are unordered: \
                 not supported yet (use a general purpose bucket)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{CountingStore, PutMode, Stats};
    use bytes::Bytes;
    use std::sync::Arc;

    fn put(store: &MemoryStore, key: &str) {
        crate::runtime::block_on(store.put(key, Bytes::from_static(b"x"), PutMode::Overwrite))
            .unwrap();
    }

    fn detect_counting(store: &Arc<MemoryStore>, prefix: &str) -> (Found, u64) {
        let stats = Arc::new(Stats::default());
        let counting = CountingStore::new(store.clone(), stats.clone());
        let found = crate::runtime::block_on(detect(&counting, prefix)).unwrap();
        (found, stats.snapshot().list)
    }

    #[test]
    fn directory_buckets_are_refused() {
        let e = validate_bucket("data--usw2-az1--x-s3").unwrap_err();
        assert_eq!(e.code, crate::error::codes::UNSUPPORTED);
        assert!(validate_bucket("data-x-s3").is_ok());
    }

    #[test]
    fn detection_skips_keys_that_are_not_ours_and_stays_bounded() {
        // Review #3: a folder marker, a README and a .keep sort before the database's keys.
        let store = Arc::new(MemoryStore::new());
        for key in ["db/", "db/!README", "db/.keep"] {
            put(&store, key);
        }
        put(&store, "db/0000000000");
        assert!(matches!(detect_counting(&store, "db").0, Found::Compat));
        // Thousands of foreign keys before ours: a few LISTs, not one per thousand keys.
        let crowded = Arc::new(MemoryStore::new());
        for i in 0..20_000 {
            put(&crowded, &format!("db/.zz{i:06}"));
        }
        put(&crowded, "db/0000000000");
        let (found, lists) = detect_counting(&crowded, "db");
        assert!(matches!(found, Found::Compat));
        assert!(lists <= 8, "{lists} LISTs");
        let versioned = Arc::new(MemoryStore::new());
        put(&versioned, "db/!r/");
        put(&versioned, &versioned::Names::new("db").root(7));
        let (found, lists) = detect_counting(&versioned, "db");
        assert!(matches!(found, Found::Versioned(Some(7))));
        assert_eq!(lists, 2);
        // Nothing of ours: nothing, however many foreign keys.
        let empty = Arc::new(MemoryStore::new());
        for i in 0..5_000 {
            put(&empty, &format!("db/zz{i:06}"));
        }
        let (found, lists) = detect_counting(&empty, "db");
        assert!(matches!(found, Found::Nothing));
        assert!(lists <= 8, "{lists} LISTs");
    }
}
