//! `inspectDatabase`: what is stored for a database, as one async JS function.

use super::error::IntoJs;
use super::options::{config, JsOptions};
use crate::layout::inspect::inspect;
use crate::layout::LayoutKind;
use crate::store::Stats;
use std::sync::Arc;

#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct JsVersionInfo {
    pub version: f64,
    /// When its root was created (ms since the epoch, the store's clock).
    pub created_ms: Option<f64>,
    /// Garbage-collected: only its tombstone is left.
    pub pruned: bool,
}

#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct JsInspection {
    /// `'versioned'`, `'sqlite-s3vfs'`, or none when no database is stored there.
    pub layout: Option<String>,
    pub objects: f64,
    pub bytes: f64,
    /// Oldest first (versioned layout).
    pub versions: Vec<JsVersionInfo>,
}

#[cfg_attr(test, allow(dead_code))]
#[napi]
pub async fn inspect_database(
    bucket: String,
    prefix: String,
    options: Option<JsOptions>,
) -> napi::Result<JsInspection> {
    let config = config(bucket, prefix, options).js()?;
    let found = crate::runtime::run(async move {
        config.validate()?;
        let store = config.connect_store(Arc::new(Stats::default())).await?;
        inspect(&*store, &config.prefix).await
    })
    .await
    .js()?
    .js()?;
    Ok(JsInspection {
        layout: found.layout.map(|l| match l {
            LayoutKind::Versioned => "versioned".to_string(),
            LayoutKind::Compat => "sqlite-s3vfs".to_string(),
        }),
        objects: found.objects as f64,
        bytes: found.bytes as f64,
        versions: found
            .versions
            .into_iter()
            .map(|v| JsVersionInfo {
                version: v.version as f64,
                created_ms: v.modified_ms.map(|m| m as f64),
                pruned: v.pruned,
            })
            .collect(),
    })
}
