//! Publishing a version: upload the changed blocks and map segments under keys unique to this
//! attempt, then create the next root with `If-None-Match: *`. The create is the commit; an
//! ambiguous answer is decided by reading the root back (its attempt id), never by guessing.

use super::codec::{BlockCodec, CODEC_RAW};
use super::format::{
    encode_segment, AttemptId, MapRef, Pointer, Root, Uploads, FLAG_CODECS, FLAG_SEALED,
};
use super::{
    load_segments, new_attempt_id, newer_than, Names, SegmentCache, Snapshot, INLINE_MAP_MAX,
};
use crate::clock::Stamp;
use crate::error::{codes, Error, Result};
use crate::store::{GetOptions, GetOutcome, ObjectStore, PutMode};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;

/// The longest a commit may rely on an observation that its base is the newest version (D in
/// DESIGN.md): GC's horizon must exceed it by the 15 minutes S3 accepts a signed request for.
pub const MAX_BASE_AGE: Duration = Duration::from_secs(600);

/// How long after its last send a root create may still land: S3 accepts a signed request for
/// 15 minutes; the rest is margin.
const LATE_SEND_HORIZON: Duration = Duration::from_secs(20 * 60);

/// The map segment index of an attempt's empty marker object (never referenced: a map has at
/// most 2^32 - 1 segments of at least 2 entries; GC collects it with the attempt).
pub const KEEPALIVE_SEGMENT: u64 = 0xffff_ffff;

/// Resends of the same root before the outcome is declared unknown.
const ROOT_ATTEMPTS: u32 = 8;

/// A version ready to publish: its objects and its root, the same bytes on every resend.
pub struct Prepared {
    pub root: Arc<Root>,
    pub root_key: String,
    pub root_bytes: Bytes,
    /// Objects to upload before the root: (key, bytes as stored).
    pub uploads: Vec<(String, Bytes)>,
    /// The blocks among `uploads`, as SQLite wrote them (for the cache: it holds what SQLite reads).
    plain: Vec<(String, Bytes)>,
    /// When the newest object of this attempt was uploaded.
    pub uploaded_at: Option<Stamp>,
    /// The root was sent at least once (it may have landed, even if no answer said so).
    pub sent: bool,
    /// When the root was first sent.
    pub first_sent_at: Option<Stamp>,
    /// When it was last sent, on the monotonic clock alone: deciding that a send can no longer
    /// land needs a clock that never runs ahead (a suspend only makes the wait longer).
    pub last_sent_at: Option<std::time::Instant>,
}

#[derive(Debug)]
pub enum Outcome {
    Committed,
    /// Another attempt created the root first: nothing of ours is visible.
    Lost,
}

pub struct Layout {
    pub page_size: u32,
    pub block_size: u64,
    pub file_size: u64,
    /// How new blocks are encoded (compressed, sealed) and the database's id.
    pub codec: BlockCodec,
    /// Map entries carry codecs (compression now, or ever before: `FLAG_CODECS` is sticky).
    pub codecs: bool,
}

impl Layout {
    pub fn segment_len(&self) -> u32 {
        super::segment_len_for(self.block_size)
    }

    /// The root flags of a version with this layout.
    pub fn flags(&self) -> u32 {
        let sealed = if self.codec.keys.is_some() {
            FLAG_SEALED | FLAG_CODECS
        } else {
            0
        };
        self.codec.compression.root_flags() | if self.codecs { FLAG_CODECS } else { 0 } | sealed
    }
}

/// Blocks a transaction already uploaded for its commit attempt (`blocks::EarlyAttempt`): the
/// attempt's naming, to continue, and where each block is.
pub struct Early<'a> {
    pub uploads: &'a mut Uploads,
    pub blocks: Vec<(u64, Pointer)>,
}

/// Builds version `base.version + 1` (or 1): `changed` holds the new content of every changed
/// block held in memory (block 0 included, or taken from the base); `early`, the blocks already
/// uploaded for this attempt.
pub async fn prepare(
    store: &dyn ObjectStore,
    names: &Names,
    base: Option<&Snapshot>,
    segments: &mut SegmentCache,
    mut changed: Vec<(u64, Bytes)>,
    early: Option<Early<'_>>,
    layout: Layout,
) -> Result<Prepared> {
    // A commit is one operation: the segment cache is bounded before it, never during it.
    segments.trim();
    let version = base.map(|b| b.version() + 1).unwrap_or(1);
    let count = layout.file_size.div_ceil(layout.block_size);
    let mut own_uploads;
    let (uploads_of, early_blocks) = match early {
        Some(e) if e.uploads.version == version => (e.uploads, e.blocks),
        Some(e) => {
            return Err(Error::internal(format!(
                "blocks were uploaded early for version {}, but the commit is of version {version}",
                e.uploads.version
            )))
        }
        None => {
            let attempt: AttemptId = new_attempt_id()?;
            own_uploads = Uploads::new(version, attempt, 0);
            (&mut own_uploads, Vec::new())
        }
    };
    changed.retain(|(i, _)| *i < count);
    let block0 = match changed.iter().position(|(i, _)| *i == 0) {
        Some(pos) => changed.remove(pos).1,
        None => base
            .map(|b| b.root.block0.clone())
            .unwrap_or_default()
            .slice(..),
    };
    let mut uploads = Vec::with_capacity(changed.len() + 2);
    let mut plain = Vec::with_capacity(changed.len());
    let mut new_entries: Vec<(u64, Pointer)> = Vec::with_capacity(changed.len());
    for (i, data) in changed {
        let (stored, p) = layout.codec.seal_block(uploads_of, i, &data)?;
        let key = names.block(i, &p);
        uploads.push((key.clone(), stored));
        plain.push((key, data));
        new_entries.push((i, p));
    }
    new_entries.extend(
        early_blocks
            .iter()
            .copied()
            .filter(|(i, _)| *i < count && *i > 0),
    );
    if !early_blocks.is_empty() {
        // The attempt's objects are spared by GC for its horizon after the newest one: this
        // commit uploads at least one (an empty marker when nothing else), so the blocks
        // uploaded early are as safe as if uploaded now (`renew_stale_attempt` ran before).
        let p = uploads_of.next(0, CODEC_RAW);
        uploads.push((names.segment(KEEPALIVE_SEGMENT, &p), Bytes::new()));
    }
    // The new map: the base's entries, with the changed ones replaced and the tail cut.
    let seg_len = layout.segment_len() as u64;
    let old_count = base.map(|b| b.block_count()).unwrap_or(0);
    let base_segments = base
        .filter(|_| count as usize > INLINE_MAP_MAX)
        .and_then(|b| match &b.root.map {
            MapRef::Segments(segs) if b.root.segment_len as u64 == seg_len => Some((b, segs)),
            _ => None,
        });
    let map = match base_segments {
        None => {
            // Small, or the base's map has another shape: the whole map from its entries.
            let mut all = match base {
                Some(b) => {
                    b.entries(store, names, segments, count.min(old_count))
                        .await?
                }
                None => Vec::new(),
            };
            all.resize(count as usize, Pointer::default());
            for (i, p) in &new_entries {
                all[*i as usize] = *p;
            }
            let (map, objects) = fresh_map(
                names,
                &all,
                uploads_of,
                seg_len as u32,
                layout.codecs,
                &layout.codec,
            )?;
            uploads.extend(objects);
            map
        }
        Some((b, base_segs)) => {
            // Only the segments with a changed entry, and those a resize cuts or extends.
            let seg_count = count.div_ceil(seg_len);
            let mut touched: Vec<u64> = new_entries.iter().map(|(i, _)| i / seg_len).collect();
            if old_count != count {
                touched.extend(old_count.min(count) / seg_len..seg_count);
            }
            touched.sort_unstable();
            touched.dedup();
            touched.retain(|s| *s < seg_count);
            let mut segs = base_segs.clone();
            segs.resize(seg_count as usize, Pointer::default());
            let loaded = load_segments(store, names, &b.root, &touched, segments).await?;
            for s in touched {
                let lo = s * seg_len;
                let hi = ((s + 1) * seg_len).min(count);
                let old = base_segs.get(s as usize).copied().unwrap_or_default();
                let old_entries = match loaded.get(&s) {
                    Some(entries) => entries.clone(),
                    None if old.is_null() || lo >= old_count => Arc::new(Vec::new()),
                    // Never an empty segment in place of one that could not be read.
                    None => {
                        return Err(Error::internal(format!(
                            "map segment {s} of version {} was not loaded",
                            b.version()
                        )))
                    }
                };
                let mut entries: Vec<Pointer> = (lo..hi)
                    .map(|i| match i < old_count {
                        true => old_entries
                            .get((i - lo) as usize)
                            .copied()
                            .unwrap_or_default(),
                        false => Pointer::default(),
                    })
                    .collect();
                for (i, p) in &new_entries {
                    if i / seg_len == s {
                        entries[(i - lo) as usize] = *p;
                    }
                }
                let mut p = uploads_of.next(0, CODEC_RAW);
                let data = layout.codec.seal_segment(
                    s,
                    &mut p,
                    encode_segment(&entries, layout.codecs),
                )?;
                let key = names.segment(s, &p);
                segments.insert(key.clone(), Arc::new(entries));
                uploads.push((key, data));
                segs[s as usize] = p;
            }
            MapRef::Segments(segs)
        }
    };
    Prepared::new(names, uploads_of, layout, map, block0, uploads, plain)
}

impl Prepared {
    /// The version of attempt `attempt` ready to publish: its root (`map`, `block0`, `layout`),
    /// and the objects it needs uploaded first.
    pub fn new(
        names: &Names,
        attempt: &Uploads,
        layout: Layout,
        map: MapRef,
        block0: Bytes,
        uploads: Vec<(String, Bytes)>,
        plain: Vec<(String, Bytes)>,
    ) -> Result<Prepared> {
        let root = Root {
            attempt: attempt.attempt,
            version: attempt.version,
            parent: attempt.version - 1,
            flags: layout.flags(),
            page_size: layout.page_size,
            block_size: layout.block_size,
            file_size: layout.file_size,
            created_ms: crate::store::now_ms().max(0) as u64,
            segment_len: layout.segment_len(),
            map,
            block0,
            db_id: layout.codec.db,
        };
        Ok(Prepared {
            root_key: names.root(root.version),
            root_bytes: root.encode_for(layout.codec.keys.as_deref())?,
            root: Arc::new(root),
            uploads,
            plain,
            uploaded_at: None,
            sent: false,
            first_sent_at: None,
            last_sent_at: None,
        })
    }

    /// The blocks this attempt uploads, as SQLite wrote them.
    pub fn block_uploads(&self) -> &[(String, Bytes)] {
        &self.plain
    }
}

/// A block map built from scratch for `entries` (entry i = block i; entry 0 is ignored): inline
/// when small, else segments of `seg_len` entries to upload (named by `uploads`).
pub fn fresh_map(
    names: &Names,
    entries: &[Pointer],
    uploads: &mut Uploads,
    seg_len: u32,
    codecs: bool,
    codec: &BlockCodec,
) -> Result<(MapRef, Vec<(String, Bytes)>)> {
    let seg_len = seg_len as usize;
    let mut entries = entries.to_vec();
    if let Some(e) = entries.first_mut() {
        *e = Pointer::default();
    }
    if entries.len() <= INLINE_MAP_MAX {
        return Ok((MapRef::Inline(entries), Vec::new()));
    }
    let mut segs = Vec::new();
    let mut objects = Vec::new();
    for (s, chunk) in entries.chunks(seg_len).enumerate() {
        let mut p = uploads.next(0, CODEC_RAW);
        let bytes = codec.seal_segment(s as u64, &mut p, encode_segment(chunk, codecs))?;
        objects.push((names.segment(s as u64, &p), bytes));
        segs.push(p);
    }
    Ok((MapRef::Segments(segs), objects))
}

/// Uploads objects of a commit attempt in parallel (plain PUTs; keys are unique to the attempt,
/// so a late retry can only write the same bytes again).
pub async fn put_all(
    store: Arc<dyn ObjectStore>,
    objects: &[(String, Bytes)],
    concurrency: usize,
) -> Result<()> {
    futures::stream::iter(objects.iter().cloned().map(|(key, data)| {
        let store = store.clone();
        async move { store.put(&key, data, PutMode::Overwrite).await.map(|_| ()) }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await
    .map(|_| ())
}

/// Uploads the attempt's objects (the same ones again when renewing them).
pub async fn upload(
    store: Arc<dyn ObjectStore>,
    p: &mut Prepared,
    concurrency: usize,
) -> Result<()> {
    let uploads = std::mem::take(&mut p.uploads);
    let result = put_all(store, &uploads, concurrency).await;
    // Kept whatever the outcome: a later attempt uploads them again, and a commit caches them.
    p.uploads = uploads;
    result?;
    p.uploaded_at = Some(Stamp::now());
    Ok(())
}

/// Creates the root. `observed` is when the base was last seen to be the newest version; it is
/// refreshed here when older than `MAX_BASE_AGE`. Errors: `COMMIT_UNKNOWN` when the store kept
/// failing after a request may have landed.
pub async fn publish_root(
    store: Arc<dyn ObjectStore>,
    names: &Names,
    p: &mut Prepared,
    observed: &mut Option<Stamp>,
    concurrency: usize,
) -> Result<Outcome> {
    let version = p.root.version;
    let mut last_error: Option<Error> = None;
    for attempt in 0..ROOT_ATTEMPTS {
        if attempt > 0 {
            // The store's backoff (and its client-wide throttle): retries live in one place.
            tokio::time::sleep(store.retry_delay(attempt, last_error.as_ref())).await;
        }
        // Once sent, the root may be ours already: only the 412 answer can tell (a look at
        // root(v+1) would take our own landed root for a rival's).
        if !p.sent && observed.is_none_or(|t| t.elapsed() > MAX_BASE_AGE) {
            // The base may be stale: look again before sending anything.
            if newer_than(&*store, names, version - 1).await?.is_some() {
                return Ok(Outcome::Lost);
            }
            *observed = Some(Stamp::now());
        }
        if p.uploaded_at.is_none_or(|t| t.elapsed() > MAX_BASE_AGE) {
            // GC spares an attempt's objects for its horizon after the newest one: renew them.
            if let Err(e) = upload(store.clone(), p, concurrency).await {
                if !p.sent {
                    return Err(e);
                }
                // Once sent, the root may have landed: any failure leaves the outcome unknown.
                last_error = Some(e);
                continue;
            }
        }
        let sent_before = std::mem::replace(&mut p.sent, true);
        p.first_sent_at.get_or_insert_with(Stamp::now);
        p.last_sent_at = Some(std::time::Instant::now());
        match store
            .put(&p.root_key, p.root_bytes.clone(), PutMode::Create)
            .await
        {
            Ok(_) => return Ok(Outcome::Committed),
            Err(e) if e.is_conflict() => {
                // Someone created it: us (an earlier send whose answer was lost), or a rival.
                match read_identity(&*store, names, &p.root_key, p.root.version).await {
                    Ok(Some(a)) => {
                        return Ok(if a == p.root.attempt {
                            Outcome::Committed
                        } else {
                            Outcome::Lost
                        })
                    }
                    // A 404 after a 412 proves nothing: ask again.
                    Ok(None) => last_error = Some(e),
                    // The root was sent: whatever this error is, it does not say whether the
                    // root is ours, so the outcome stays unknown (never a plain error).
                    Err(e2) => last_error = Some(e2),
                }
            }
            Err(e) if e.is_transient() => last_error = Some(e),
            // A definite refusal (AccessDenied, ...) of the first send: nothing was published.
            Err(e) if !sent_before => return Err(e),
            Err(e) => last_error = Some(e),
        }
    }
    let why = last_error.map(|e| e.message).unwrap_or_default();
    Err(commit_unknown(version, &why))
}

fn commit_unknown(version: u64, why: &str) -> Error {
    Error::new(
        codes::COMMIT_UNKNOWN,
        format!(
            "the commit of version {version} may or may not have been published ({why}); do not \
             run the transaction again yet: db.settle() tells whether it committed (the next \
             write on this connection settles it first)"
        ),
    )
    .with_kind(crate::error::ErrorKind::UnknownOutcome)
}

/// Decides an attempt whose root create had an unknown outcome. While the attempt is recent
/// (first sent within `MAX_BASE_AGE`), its same bytes are resent, as `publish_root` does. Later,
/// a resend could recreate a root that GC pruned and whose tombstone is gone, over a history
/// that moved on: then only reading the root back decides, and a root that is gone while later
/// versions exist cannot be decided any more (`COMMIT_UNDECIDABLE`).
pub async fn settle_root(
    store: Arc<dyn ObjectStore>,
    names: &Names,
    p: &mut Prepared,
    concurrency: usize,
) -> Result<Outcome> {
    let version = p.root.version;
    let recent = p.first_sent_at.is_none_or(|t| t.elapsed() <= MAX_BASE_AGE);
    if recent {
        let mut observed = None;
        return publish_root(store, names, p, &mut observed, concurrency).await;
    }
    match read_identity(&*store, names, &p.root_key, version).await {
        Ok(Some(a)) if a == p.root.attempt => Ok(Outcome::Committed),
        Ok(Some(_)) => Ok(Outcome::Lost),
        Ok(None) => match super::find_head(&*store, names).await {
            Ok(Some(head)) if head.version() >= version => Err(Error::new(
                codes::COMMIT_UNDECIDABLE,
                format!(
                    "version {version} was garbage-collected before its commit could be \
                     settled: whether this connection's commit is in the history cannot be told"
                ),
            )),
            // Nothing is published at this version. Ours did not land, unless a send is still in
            // flight: S3 accepts a signed request for 15 minutes.
            Ok(_)
                if p.last_sent_at
                    .is_some_and(|t| t.elapsed() > LATE_SEND_HORIZON) =>
            {
                Ok(Outcome::Lost)
            }
            Ok(_) => Err(commit_unknown(
                version,
                "its root is not there yet, but a send may still land",
            )),
            Err(e) => Err(commit_unknown(version, &e.message)),
        },
        Err(e) => Err(commit_unknown(version, &e.message)),
    }
}

/// The attempt id of an existing root (`None` when it is missing). In an encrypted database the
/// whole root is read and authenticated: its plain prefix alone could be planted by the bucket's
/// owner to make a commit look landed (or lost); anything that does not authenticate leaves the
/// outcome unknown.
async fn read_identity(
    store: &dyn ObjectStore,
    names: &Names,
    key: &str,
    version: u64,
) -> Result<Option<AttemptId>> {
    if let Some(keys) = names.keys() {
        return match store.get(key, GetOptions::default()).await? {
            GetOutcome::Found(obj) => {
                let root = Root::decode_with(&obj.body, key, Some(keys))?;
                if root.is_pruned() || root.version != version {
                    return Err(super::seal::tampered(key));
                }
                Ok(Some(root.attempt))
            }
            _ => Ok(None),
        };
    }
    let opts = GetOptions {
        range: Some((0, super::format::ROOT_ID_LEN)),
        if_none_match: None,
    };
    match store.get(key, opts).await? {
        GetOutcome::Found(obj) => Ok(super::format::root_identity(&obj.body).map(|(a, _)| a)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::faults::{s3_error, Action, FaultyStore};
    use crate::store::ObjectStore;

    /// Publishes one version with a single changed block 1 on top of `base`.
    async fn attempt(
        store: &Arc<FaultyStore>,
        base: Option<&Snapshot>,
    ) -> (Prepared, Result<Outcome>) {
        let names = Names::new("db");
        let mut block0 = vec![0u8; 512];
        block0[..16].copy_from_slice(b"SQLite format 3\0");
        let changed = vec![(0, Bytes::from(block0)), (1, Bytes::from(vec![7u8; 512]))];
        let layout = Layout {
            page_size: 512,
            block_size: 512,
            file_size: 1024,
            codec: BlockCodec::default(),
            codecs: false,
        };
        let dyn_store: Arc<dyn ObjectStore> = store.clone();
        let mut segments = SegmentCache::default();
        let mut p = prepare(
            &*dyn_store,
            &names,
            base,
            &mut segments,
            changed,
            None,
            layout,
        )
        .await
        .unwrap();
        upload(dyn_store.clone(), &mut p, 4).await.unwrap();
        let mut observed = Some(Stamp::now());
        let outcome = publish_root(dyn_store, &names, &mut p, &mut observed, 4).await;
        (p, outcome)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_lost_response_then_412_with_our_attempt_id_is_a_commit() {
        rt().block_on(async {
            let store = Arc::new(FaultyStore::new());
            store.inject("/!r/", Action::LandThenFail(s3_error("ETIMEDOUT")));
            let (p, outcome) = attempt(&store, None).await;
            assert!(matches!(outcome, Ok(Outcome::Committed)), "{outcome:?}");
            let head = crate::layout::versioned::find_head(&*store, &Names::new("db"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(head.root.attempt, p.root.attempt);
        });
    }

    #[test]
    fn a_409_or_503_then_success_commits_once() {
        for code in ["ConditionalRequestConflict", "ServiceUnavailable"] {
            rt().block_on(async {
                let store = Arc::new(FaultyStore::new());
                store.inject("/!r/", Action::Fail(s3_error(code)));
                let (_, outcome) = attempt(&store, None).await;
                assert!(
                    matches!(outcome, Ok(Outcome::Committed)),
                    "{code}: {outcome:?}"
                );
                let roots = store
                    .keys()
                    .into_iter()
                    .filter(|k| k.contains("/!r/"))
                    .count();
                assert_eq!(roots, 1);
            });
        }
    }

    #[test]
    fn a_rival_root_is_a_loss_and_nothing_of_ours_is_referenced() {
        rt().block_on(async {
            let store = Arc::new(FaultyStore::new());
            let (winner, first) = attempt(&store, None).await;
            assert!(matches!(first, Ok(Outcome::Committed)));
            // A second writer on the same (empty) base loses, whatever the store answered first.
            store.inject("/!r/", Action::Fail(s3_error("ServiceUnavailable")));
            let (loser, second) = attempt(&store, None).await;
            assert!(matches!(second, Ok(Outcome::Lost)), "{second:?}");
            let head = crate::layout::versioned::find_head(&*store, &Names::new("db"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(head.root.attempt, winner.root.attempt);
            // Keys are unique per attempt: the loser overwrote none of the winner's objects.
            for (key, _) in &loser.uploads {
                assert!(winner.uploads.iter().all(|(k, _)| k != key));
            }
        });
    }

    #[test]
    fn an_undecidable_create_is_commit_unknown_not_a_guess() {
        rt().block_on(async {
            let store = Arc::new(FaultyStore::new());
            for _ in 0..ROOT_ATTEMPTS {
                store.inject("/!r/", Action::Fail(s3_error("ETIMEDOUT")));
            }
            let (mut p, outcome) = attempt(&store, None).await;
            let err = outcome.unwrap_err();
            assert_eq!(err.code, codes::COMMIT_UNKNOWN);
            // Resending the same bytes later settles it.
            let dyn_store: Arc<dyn ObjectStore> = store.clone();
            let mut observed = Some(Stamp::now());
            let settled = publish_root(dyn_store, &Names::new("db"), &mut p, &mut observed, 4)
                .await
                .unwrap();
            assert!(matches!(settled, Outcome::Committed));
        });
    }

    #[test]
    fn settling_a_root_that_landed_unanswered_is_a_commit_even_with_a_stale_base() {
        rt().block_on(async {
            let store = Arc::new(FaultyStore::new());
            store.inject("/!r/", Action::LandThenFail(s3_error("ETIMEDOUT")));
            for _ in 1..ROOT_ATTEMPTS {
                store.inject("/!r/", Action::Fail(s3_error("ETIMEDOUT")));
            }
            let (mut p, outcome) = attempt(&store, None).await;
            assert_eq!(outcome.unwrap_err().code, codes::COMMIT_UNKNOWN);
            // The connection forgot its observation after the unknown outcome: root(v+1) exists
            // now, but it is ours, and the resend's 412 must say so.
            let dyn_store: Arc<dyn ObjectStore> = store.clone();
            let mut observed = None;
            let settled = publish_root(dyn_store, &Names::new("db"), &mut p, &mut observed, 4)
                .await
                .unwrap();
            assert!(matches!(settled, Outcome::Committed), "{settled:?}");
        });
    }

    #[test]
    fn an_old_unknown_commit_is_settled_by_reading_back_never_by_a_resend() {
        rt().block_on(async {
            // Review #10 (b): the create never landed; a day later, rivals published v1..v3 and GC
            // deleted root(1)'s tombstone. A resend would create a ghost root(1).
            let store = Arc::new(FaultyStore::new());
            for _ in 0..ROOT_ATTEMPTS {
                store.inject("/!r/", Action::Fail(s3_error("ServiceUnavailable")));
            }
            let (mut p, outcome) = attempt(&store, None).await;
            assert_eq!(outcome.unwrap_err().code, codes::COMMIT_UNKNOWN);
            p.first_sent_at = Some(Stamp::now().earlier(MAX_BASE_AGE * 2));
            let names = Names::new("db");
            let dyn_store: Arc<dyn ObjectStore> = store.clone();
            // Nothing published at version 1 yet, but the last send is recent: it may still land.
            let e = settle_root(dyn_store.clone(), &names, &mut p, 4)
                .await
                .unwrap_err();
            assert_eq!(e.code, codes::COMMIT_UNKNOWN);
            // Long after the last send: ours did not land, and nothing is resent.
            p.last_sent_at = std::time::Instant::now().checked_sub(LATE_SEND_HORIZON * 2);
            let lost = settle_root(dyn_store.clone(), &names, &mut p, 4)
                .await
                .unwrap();
            assert!(matches!(lost, Outcome::Lost));
            assert!(store.keys().iter().all(|k| !k.contains("/!r/")));
            // Rivals moved on and root(1) is gone: undecidable, and still no ghost.
            for _ in 0..3 {
                let head = crate::layout::versioned::find_head(&*store, &names)
                    .await
                    .unwrap();
                let (_, o) = attempt(&store, head.as_ref()).await;
                assert!(matches!(o, Ok(Outcome::Committed)));
            }
            store.delete(&names.root(1)).await.unwrap();
            let e = settle_root(dyn_store.clone(), &names, &mut p, 4)
                .await
                .unwrap_err();
            assert_eq!(e.code, codes::COMMIT_UNDECIDABLE);
            assert!(store
                .get(&names.root(1), GetOptions::default())
                .await
                .map(|o| matches!(o, GetOutcome::NotFound))
                .unwrap());
        });
    }

    #[test]
    fn a_failed_re_upload_keeps_the_attempt_objects() {
        rt().block_on(async {
            // Red team: a re-upload after a long pause fails once, then the root lands; the
            // attempt's objects must still be there to cache (an empty list used to panic).
            let store = Arc::new(FaultyStore::new());
            store.inject("/!r/", Action::Fail(s3_error("ServiceUnavailable")));
            for _ in 1..ROOT_ATTEMPTS {
                store.inject("/!r/", Action::Fail(s3_error("ServiceUnavailable")));
            }
            let (mut p, outcome) = attempt(&store, None).await;
            assert_eq!(outcome.unwrap_err().code, codes::COMMIT_UNKNOWN);
            let blocks = p.block_uploads().len();
            p.uploaded_at = Some(Stamp::now().earlier(MAX_BASE_AGE * 2));
            store.inject("/.b/", Action::Fail(s3_error("ServiceUnavailable")));
            let dyn_store: Arc<dyn ObjectStore> = store.clone();
            let mut observed = None;
            let settled = publish_root(dyn_store, &Names::new("db"), &mut p, &mut observed, 4)
                .await
                .unwrap();
            assert!(matches!(settled, Outcome::Committed));
            assert_eq!(p.block_uploads().len(), blocks);
        });
    }
}
