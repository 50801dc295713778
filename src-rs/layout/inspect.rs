//! What is stored for a database: its layout, its objects and bytes, and (versioned layout) its
//! versions — for `S3Database.inspect`, the CLI's `info` and `versions`. One LIST per 1,000
//! objects; no object is read.

use super::{compat, detect, versioned, Found, LayoutKind};
use crate::error::Result;
use crate::store::{list_all, ObjectStore};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    /// When its root was created (the store's LastModified).
    pub modified_ms: Option<i64>,
    /// Garbage-collected: only its tombstone is left.
    pub pruned: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// `None`: no database under the prefix.
    pub layout: Option<LayoutKind>,
    /// Objects and bytes under the prefix (the `sqlite-s3vfs` layout's journal included).
    pub objects: u64,
    pub bytes: u64,
    /// Oldest first.
    pub versions: Vec<VersionInfo>,
}

pub async fn inspect(store: &dyn ObjectStore, prefix: &str) -> Result<Inspection> {
    let layout = match detect(store, prefix).await? {
        Found::Nothing => None,
        Found::Compat => Some(LayoutKind::Compat),
        Found::Versioned(_) => Some(LayoutKind::Versioned),
    };
    let mut objects = list_all(store, &format!("{prefix}/")).await?;
    if layout == Some(LayoutKind::Compat) {
        objects.extend(list_all(store, &format!("{}/", compat::journal_prefix(prefix))).await?);
    }
    let names = versioned::Names::new(prefix);
    let mut versions: Vec<VersionInfo> = objects
        .iter()
        .filter_map(|o| {
            Some(VersionInfo {
                version: names.parse_root(&o.key)?,
                modified_ms: o.last_modified_ms,
                pruned: versioned::gc::is_tombstone(o.size),
            })
        })
        .collect();
    versions.sort_by_key(|v| v.version);
    Ok(Inspection {
        layout,
        objects: objects.len() as u64,
        bytes: objects.iter().map(|o| o.size).sum(),
        versions,
    })
}
