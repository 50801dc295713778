//! `collectGarbage`: the versioned layout's GC as one async JS function.

use super::error::IntoJs;
use super::options::{config, JsOptions};
use crate::layout::versioned::gc::{collect, GcOptions, DEFAULT_GRACE_MS};
use crate::layout::versioned::Names;
use crate::store::Stats;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use std::sync::Arc;

// Only JS calls these (the unit-test build sees them unused).
#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct JsGcReport {
    /// The newest version.
    pub head: f64,
    pub versions_kept: f64,
    /// Versions whose roots became tombstones in this run.
    pub versions_pruned: f64,
    pub objects_deleted: f64,
}

/// How far the deletions are.
#[cfg_attr(test, allow(dead_code))]
#[napi(object)]
pub struct JsGcProgress {
    pub deleted: f64,
    pub total: f64,
}

type ProgressCallback = ThreadsafeFunction<
    JsGcProgress,
    napi::bindgen_prelude::Unknown<'static>,
    JsGcProgress,
    napi::Status,
    false,
    true,
>;

/// What `S3Database.gc` takes besides the store's options.
#[cfg_attr(test, allow(dead_code))]
#[napi(object, object_to_js = false)]
pub struct JsGcOptions {
    pub keep_versions: Option<f64>,
    pub grace_period_ms: Option<f64>,
    pub unsafe_short_grace_period: Option<bool>,
    pub dry_run: Option<bool>,
    pub on_progress: Option<ProgressCallback>,
}

/// Options are read here, on the JS thread (a key provider records it as the thread it must
/// never be waited for on); the collection runs on the runtime.
#[cfg_attr(test, allow(dead_code))]
#[napi(ts_return_type = "Promise<JsGcReport>")]
pub fn collect_garbage<'e>(
    env: &'e napi::Env,
    bucket: String,
    prefix: String,
    options: Option<JsOptions>,
    gc: JsGcOptions,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'e, JsGcReport>> {
    let JsGcOptions {
        keep_versions,
        grace_period_ms,
        unsafe_short_grace_period,
        dry_run,
        on_progress,
    } = gc;
    let progress = on_progress.map(|callback| {
        let callback = Arc::new(callback);
        Arc::new(move |deleted: u64, total: u64| {
            let _ = callback.call(
                JsGcProgress {
                    deleted: deleted as f64,
                    total: total as f64,
                },
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }) as crate::layout::versioned::gc::Progress
    });
    let config = config(bucket, prefix, options).js()?;
    env.spawn_future(collect_report(
        config,
        keep_versions,
        grace_period_ms,
        unsafe_short_grace_period,
        dry_run,
        progress,
    ))
}

async fn collect_report(
    config: crate::connection::DatabaseConfig,
    keep_versions: Option<f64>,
    grace_period_ms: Option<f64>,
    unsafe_short_grace_period: Option<bool>,
    dry_run: Option<bool>,
    progress: Option<crate::layout::versioned::gc::Progress>,
) -> napi::Result<JsGcReport> {
    let report = crate::runtime::run(async move {
        config.validate()?;
        let store = config.connect_store(Arc::new(Stats::default())).await?;
        let opts = GcOptions {
            keep_versions: keep_versions.map(|k| k.max(1.0) as u64).unwrap_or(1),
            grace_ms: grace_period_ms
                .map(|g| g.max(0.0) as u64)
                .unwrap_or(DEFAULT_GRACE_MS),
            concurrency: config.concurrency,
            allow_short_grace: unsafe_short_grace_period.unwrap_or(false),
            dry_run: dry_run.unwrap_or(false),
            progress,
        };
        let names = Names::with_keys(config.prefix.clone(), config.versioned.encryption.clone())
            .with_plain_history();
        collect(store, &names, opts).await
    })
    .await
    .js()?
    .js()?;
    Ok(JsGcReport {
        head: report.head as f64,
        versions_kept: report.versions_kept as f64,
        versions_pruned: report.versions_pruned as f64,
        objects_deleted: report.objects_deleted as f64,
    })
}
