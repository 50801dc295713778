//! Garbage collection, lock-free and safe beside live readers and writers. Ages are measured
//! against the store's clock (the LastModified of a probe object), never the local one.
//!
//! - Retained: the newest `keep_versions` versions, and every version whose successor root is
//!   younger than the horizon H (a reader may still be pinned to it).
//! - A root that is not retained becomes a tombstone (its header only): its key keeps existing, so
//!   a stale writer can never create it again ("resurrection"). Tombstones are deleted once their
//!   successor is older than `TOMBSTONE_AGE` (far beyond any writer's 15-minute signing window).
//! - A block or map segment no retained root reaches is deleted only when the newest object of its
//!   commit attempt is older than H: a writer between its uploads and its root is never robbed.
//! - Only keys under `P/!r/`, `P/.b/` and `P/.m/` that parse strictly are touched: another
//!   database under a longer prefix is never seen as garbage.

use super::format::{MapRef, ROOT_HEADER_LEN};
use super::{get_required, get_root, Names, SegmentCache};
use crate::error::{Error, Result};
use crate::store::{delete_keys_reporting, list_all, DynStore, PutMode};
use std::collections::{HashMap, HashSet};

pub const DEFAULT_GRACE_MS: u64 = 3_600_000;
const TOMBSTONE_AGE_MS: i64 = 24 * 3_600_000;
/// A tombstone's size: the root header and its checksum.
const TOMBSTONE_LEN: usize = ROOT_HEADER_LEN + 4;

/// The shortest horizon that keeps the commit protocol safe: a writer may rely on an upload
/// for `MAX_BASE_AGE` (10 min) plus S3's 15-minute window for a signed request, and a margin.
pub const MIN_SAFE_GRACE_MS: u64 = 30 * 60_000;

pub struct GcOptions {
    pub keep_versions: u64,
    pub grace_ms: u64,
    pub concurrency: usize,
    /// Accept a horizon below `MIN_SAFE_GRACE_MS` (tests, maintenance with no writer running).
    pub allow_short_grace: bool,
    /// Report what would be pruned and deleted, and change nothing.
    pub dry_run: bool,
    /// Told `(deleted, total)` as the objects go (a CLI's progress bar).
    pub progress: Option<Progress>,
}

/// `(done, total)` of a long operation.
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Whether a root object of this size is a tombstone (a pruned version's bare header).
pub fn is_tombstone(size: u64) -> bool {
    size as usize <= TOMBSTONE_LEN
}

#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub head: u64,
    pub versions_kept: u64,
    pub versions_pruned: u64,
    pub objects_deleted: u64,
}

/// The store's current time: the LastModified of a probe object written now.
async fn store_now(store: &DynStore, names: &Names) -> Result<i64> {
    crate::store::store_now(&**store, &names.scratch("clock")?).await
}

pub async fn collect(store: DynStore, names: &Names, opts: GcOptions) -> Result<GcReport> {
    if opts.grace_ms < MIN_SAFE_GRACE_MS && !opts.allow_short_grace {
        return Err(Error::invalid(format!(
            "gracePeriodMs {} is below {MIN_SAFE_GRACE_MS} ms: a writer stalled that long could \
             lose its uploads; pass unsafeShortGracePeriod: true only when no writer runs",
            opts.grace_ms
        )));
    }
    // A dry run writes nothing, not even the clock probe: it takes the local clock (a report
    // can be off by the clocks' skew; a real run never is).
    let now = if opts.dry_run {
        crate::store::now_ms()
    } else {
        store_now(&store, names).await?
    };
    // Saturating: a horizon past i64 (a caller's "forever") keeps everything, never wraps to a
    // negative one that would keep nothing.
    let grace = i64::try_from(opts.grace_ms).unwrap_or(i64::MAX);
    let mut roots: Vec<(u64, i64, u64)> = list_all(&*store, &names.roots_dir())
        .await?
        .into_iter()
        .filter_map(|o| {
            let v = names.parse_root(&o.key)?;
            Some((v, o.last_modified_ms.unwrap_or(now), o.size))
        })
        .collect();
    roots.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut report = GcReport {
        head: roots.first().map(|r| r.0).unwrap_or(0),
        ..Default::default()
    };
    let modified: HashMap<u64, i64> = roots.iter().map(|(v, m, _)| (*v, *m)).collect();
    let successor_age = |v: u64| modified.get(&(v + 1)).map(|m| now - m);

    // Which versions stay, which become tombstones, which tombstones go.
    let mut retained = Vec::new();
    let mut to_prune = Vec::new();
    let mut doomed: Vec<String> = Vec::new();
    let mut live = 0u64;
    for (v, _, size) in &roots {
        let key = names.root(*v);
        // A tombstone is a bare header (a version always has block 0).
        if is_tombstone(*size) {
            if successor_age(*v).is_some_and(|age| age >= TOMBSTONE_AGE_MS.max(grace)) {
                doomed.push(key);
            }
            continue;
        }
        let young_successor = successor_age(*v).is_none_or(|age| age < grace);
        if live < opts.keep_versions.max(1) || young_successor {
            retained.push(*v);
        } else {
            to_prune.push(*v);
        }
        live += 1;
    }

    // Mark what the retained versions reach.
    let mut reachable: HashSet<String> = HashSet::new();
    let mut segments = SegmentCache::default();
    for &v in &retained {
        // Missing: pruned meanwhile by another GC, nothing of it to keep.
        let Some(snap) = get_root(&*store, names, v).await? else {
            continue;
        };
        if let MapRef::Segments(segs) = &snap.root.map {
            for (s, p) in segs.iter().enumerate() {
                if !p.is_null() {
                    reachable.insert(names.segment(s as u64, p));
                }
            }
        }
        // Between two versions' marks: the cache is bounded, and `entries` owns its result.
        segments.trim();
        let entries = snap
            .entries(&*store, names, &mut segments, snap.block_count())
            .await?;
        for (i, p) in entries.iter().enumerate() {
            if !p.is_null() {
                reachable.insert(names.block(i as u64, p));
            }
        }
    }

    // Unreachable blocks and segments, grouped by attempt: an attempt's objects go only when its
    // newest one is older than the horizon.
    let mut candidates: Vec<(String, [u8; 16])> = Vec::new();
    let mut newest: HashMap<[u8; 16], i64> = HashMap::new();
    for (dir, is_block) in [(names.blocks_dir(), true), (names.segments_dir(), false)] {
        for o in list_all(&*store, &dir).await? {
            let id = if is_block {
                names.parse_block(&o.key)
            } else {
                names.parse_segment(&o.key)
            };
            let Some(id) = id else { continue };
            let m = o.last_modified_ms.unwrap_or(now);
            let e = newest.entry(id.attempt).or_insert(m);
            *e = (*e).max(m);
            if !reachable.contains(&o.key) {
                candidates.push((o.key, id.attempt));
            }
        }
    }
    for (key, attempt) in candidates {
        if newest.get(&attempt).is_some_and(|m| now - m >= grace) {
            doomed.push(key);
        }
    }

    report.versions_kept = retained.len() as u64;
    report.versions_pruned = to_prune.len() as u64;
    report.objects_deleted = doomed.len() as u64;
    if opts.dry_run {
        return Ok(report);
    }
    // Tombstones first (after that no reader can pin those versions), then the objects.
    for &v in &to_prune {
        write_tombstone(&store, names, v).await?;
    }
    let total = doomed.len() as u64;
    let progress = opts.progress.clone();
    let deleted = move |n: u64| {
        if let Some(p) = &progress {
            p(n, total)
        }
    };
    deleted(0);
    delete_keys_reporting(store.clone(), doomed, opts.concurrency, &deleted).await?;
    Ok(report)
}

/// Replaces root `v` with its tombstone (same version and attempt id, no map, no block 0).
async fn write_tombstone(store: &DynStore, names: &Names, v: u64) -> Result<()> {
    let key = names.root(v);
    let body = get_required(&**store, &key, v).await?;
    let root = names.decode_root(&body, &key)?;
    store
        .put(&key, root.tombstone().encode(), PutMode::Overwrite)
        .await?;
    Ok(())
}
