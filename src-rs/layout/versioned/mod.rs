//! The `versioned` layout (the default): every commit is a new version published by creating its
//! root with `If-None-Match: *`; blocks and map segments are immutable objects under keys unique
//! to one upload. See DESIGN.md ("versioned layout") and notes/design-review.md for the rules
//! this module follows.
//!
//! Names (P = prefix):
//! - `P/!r/{~v:016x}` root of version v (`~v` = 2^64-1-v, so one `LIST P/ max-keys=1` finds the
//!   newest root: `!` sorts before `.`, digits and letters);
//! - `P/.b/{i:012x}/{v:016x}-{A:032x}-{n:x}` block i, uploaded by attempt A of version v;
//! - `P/.m/{s:08x}/{v:016x}-{A:032x}-{n:x}` map segment s.

pub mod codec;
pub mod commit;
pub mod format;
pub mod gc;
pub mod import;
pub mod map;
pub mod seal;

use crate::error::{codes, Error, Result};
use crate::store::{first_key_where, GetOptions, GetOutcome, ObjectStore};
use bytes::Bytes;
use format::{decode_segment, AttemptId, MapRef, Pointer, Root};
use std::collections::HashMap;
use std::sync::Arc;

/// Blocks per map segment (32 bytes each: 32 KiB segments). A map this small or smaller is kept
/// inline in the root.
/// Block maps of at most this many entries live inside the root (32 KiB at most).
pub const INLINE_MAP_MAX: usize = 1024;

/// Entries per map segment: about one block's worth of bytes (32 bytes an entry), at least 1024,
/// so that a large database's whole map is a few objects (a cold query reads one), while a
/// commit rewrites no more map than it writes data.
pub fn segment_len_for(block_size: u64) -> u32 {
    (block_size / 32).clamp(1024, 65536) as u32
}

/// How one database's objects are named, and (encrypted databases) the keys that seal them.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
    keys: Option<Arc<seal::Keyring>>,
    /// GC of an encrypted database: its versions from before it was encrypted (an import with
    /// `overwrite` encrypts from a version on) are read as the plain roots they are.
    plain_history: bool,
}

// Names are equal when they name the same objects.
impl PartialEq for Names {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix
    }
}
impl Eq for Names {}

fn hex(a: &AttemptId) -> String {
    a.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<AttemptId> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (k, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * k..2 * k + 2)?, 16).ok()?;
    }
    Some(out)
}

/// An object of a commit attempt, as its key tells: (index, version, attempt, upload number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectId {
    pub index: u64,
    pub version: u64,
    pub attempt: AttemptId,
    pub seq: u32,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Names {
            prefix: prefix.into(),
            keys: None,
            plain_history: false,
        }
    }

    /// These names, reading plain roots as such even with keys (GC only: a reader or writer of
    /// an encrypted database refuses them).
    pub fn with_plain_history(self) -> Self {
        Names {
            plain_history: true,
            ..self
        }
    }

    /// A stored root: sealed with these names' keys, or plain (see `Root::decode_with`).
    pub fn decode_root(&self, bytes: &[u8], key: &str) -> Result<Root> {
        match Root::decode_with(bytes, key, self.keys().map(|k| &**k)) {
            Err(e) if e.code == codes::NOT_ENCRYPTED && self.plain_history => {
                Root::decode(bytes, key)
            }
            r => r,
        }
    }

    /// The names of an encrypted database, with the keys that open (and seal) its objects.
    pub fn with_keys(prefix: impl Into<String>, keys: Option<Arc<seal::Keyring>>) -> Self {
        Names {
            prefix: prefix.into(),
            keys,
            plain_history: false,
        }
    }

    pub fn keys(&self) -> Option<&Arc<seal::Keyring>> {
        self.keys.as_ref()
    }

    pub fn roots_dir(&self) -> String {
        format!("{}/!r/", self.prefix)
    }

    pub fn blocks_dir(&self) -> String {
        format!("{}/.b/", self.prefix)
    }

    pub fn segments_dir(&self) -> String {
        format!("{}/.m/", self.prefix)
    }

    pub fn root(&self, version: u64) -> String {
        format!("{}{:016x}", self.roots_dir(), u64::MAX - version)
    }

    /// A key of its own for a short-lived object of `kind` (`P/.probe/...`, `P/.clock/...`):
    /// random, so that processes never touch each other's.
    pub fn scratch(&self, kind: &str) -> Result<String> {
        Ok(format!(
            "{}/.{kind}/{}",
            self.prefix,
            hex(&new_attempt_id()?)
        ))
    }

    pub fn parse_root(&self, key: &str) -> Option<u64> {
        let rest = key.strip_prefix(&self.roots_dir())?;
        if rest.len() != 16 {
            return None;
        }
        u64::from_str_radix(rest, 16).ok().map(|c| u64::MAX - c)
    }

    pub fn block(&self, index: u64, p: &Pointer) -> String {
        format!(
            "{}{index:012x}/{:016x}-{}-{:x}",
            self.blocks_dir(),
            p.version,
            hex(&p.attempt),
            p.seq
        )
    }

    pub fn segment(&self, index: u64, p: &Pointer) -> String {
        format!(
            "{}{index:08x}/{:016x}-{}-{:x}",
            self.segments_dir(),
            p.version,
            hex(&p.attempt),
            p.seq
        )
    }

    /// Parses a block or segment key under `dir` (strictly: a key that does not parse is not
    /// ours, and GC never deletes it).
    pub fn parse_object(&self, dir: &str, index_width: usize, key: &str) -> Option<ObjectId> {
        let rest = key.strip_prefix(dir)?;
        let (index, name) = rest.split_once('/')?;
        let mut parts = name.split('-');
        let (v, a, n) = (parts.next()?, parts.next()?, parts.next()?);
        if index.len() != index_width || v.len() != 16 || parts.next().is_some() {
            return None;
        }
        Some(ObjectId {
            index: u64::from_str_radix(index, 16).ok()?,
            version: u64::from_str_radix(v, 16).ok()?,
            attempt: unhex(a)?,
            seq: u32::from_str_radix(n, 16).ok()?,
        })
    }

    pub fn parse_block(&self, key: &str) -> Option<ObjectId> {
        self.parse_object(&self.blocks_dir(), 12, key)
    }

    pub fn parse_segment(&self, key: &str) -> Option<ObjectId> {
        self.parse_object(&self.segments_dir(), 8, key)
    }
}

/// A fresh attempt id from the OS random source.
pub fn new_attempt_id() -> Result<AttemptId> {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id)
        .map_err(|e| Error::internal(format!("the OS random source failed: {e}")))?;
    Ok(id)
}

/// A referenced object is gone (GC removed the version, or the store lost it): never read as
/// zeros.
pub fn version_gone(key: &str, version: u64) -> Error {
    Error::new(
        codes::VERSION_GONE,
        format!(
            "{key} is missing: version {version} is no longer available (garbage-collected?); \
             reopen the database to read the current version"
        ),
    )
}

/// A published version as a reader sees it: its root, and the map segments loaded so far.
pub struct Snapshot {
    pub root: Arc<Root>,
}

/// Where block `i` of a snapshot lives.
pub enum BlockLocation {
    /// Inside the root (block 0).
    Inline,
    /// Not stored: zeros (the lock-byte page's block, or past the end).
    Zeros,
    Object(String, Pointer),
}

/// Map segments already read, by key (they are immutable, so never stale). Nothing is evicted
/// while an operation runs: an operation (a read, a write, a commit) loads what it needs and
/// then looks entries up, so an eviction in between would turn a loaded segment into "not
/// loaded". `trim` bounds the cache between operations instead.
#[derive(Default)]
pub struct SegmentCache {
    segments: HashMap<String, Arc<Vec<Pointer>>>,
    entries: usize,
}

/// Entries kept across operations (2M entries map 512 GiB of 256 KiB blocks).
const SEGMENT_CACHE_MAX_ENTRIES: usize = 1 << 21;

impl SegmentCache {
    pub fn get(&self, key: &str) -> Option<Arc<Vec<Pointer>>> {
        self.segments.get(key).cloned()
    }

    pub fn insert(&mut self, key: String, entries: Arc<Vec<Pointer>>) {
        self.entries += entries.len();
        if let Some(old) = self.segments.insert(key, entries) {
            self.entries -= old.len();
        }
    }

    /// Between operations: starts over when the cache holds more than its bound (a segment
    /// dropped here is simply read again by the next operation that needs it).
    pub fn trim(&mut self) {
        self.trim_to(SEGMENT_CACHE_MAX_ENTRIES);
    }

    fn trim_to(&mut self, max_entries: usize) {
        if self.entries > max_entries {
            self.segments.clear();
            self.entries = 0;
        }
    }

    pub fn entry_count(&self) -> usize {
        self.entries
    }
}

/// A map entry that should be loaded is not: a bug, reported instead of read as zeros.
fn segment_not_loaded(key: &str) -> Error {
    Error::internal(format!("map segment {key} was not loaded before use"))
}

/// A segment with fewer entries than its place in the map needs (a damaged or foreign object).
fn short_segment(key: &str, has: usize, needs: usize) -> Error {
    Error::new(
        codes::CORRUPT_OBJECT,
        format!("{key}: map segment has {has} entries where {needs} are needed"),
    )
}

impl Snapshot {
    pub fn version(&self) -> u64 {
        self.root.version
    }

    pub fn block_count(&self) -> u64 {
        self.root.file_size.div_ceil(self.root.block_size)
    }

    /// The segment that holds block `i`'s entry, when the map is not inline: (index, pointer).
    pub fn segment_of(&self, i: u64) -> Option<(u64, Pointer)> {
        match &self.root.map {
            MapRef::Inline(_) => None,
            MapRef::Segments(segs) => {
                let s = i / self.root.segment_len as u64;
                segs.get(s as usize).map(|p| (s, *p))
            }
        }
    }

    /// Block `i`'s location, given the loaded segments (an error when its segment is not
    /// loaded or too short: never zeros for an entry we could not read).
    pub fn locate(&self, names: &Names, i: u64, segments: &SegmentCache) -> Result<BlockLocation> {
        if i == 0 {
            return Ok(BlockLocation::Inline);
        }
        if i >= self.block_count() {
            return Ok(BlockLocation::Zeros);
        }
        let pointer = match &self.root.map {
            MapRef::Inline(entries) => entries.get(i as usize).copied().unwrap_or_default(),
            MapRef::Segments(_) => match self.segment_of(i) {
                None => Pointer::default(),
                Some((_, sp)) if sp.is_null() => Pointer::default(),
                Some((s, sp)) => {
                    let key = names.segment(s, &sp);
                    let entries = segments.get(&key).ok_or_else(|| segment_not_loaded(&key))?;
                    let within = (i % self.root.segment_len as u64) as usize;
                    *entries
                        .get(within)
                        .ok_or_else(|| short_segment(&key, entries.len(), within + 1))?
                }
            },
        };
        Ok(if pointer.is_null() {
            BlockLocation::Zeros
        } else {
            BlockLocation::Object(names.block(i, &pointer), pointer)
        })
    }

    /// The map segments that hold the entries of blocks `0..count` (none for an inline map).
    pub fn segments_up_to(&self, count: u64) -> Vec<u64> {
        match &self.root.map {
            MapRef::Inline(_) => Vec::new(),
            MapRef::Segments(_) => (0..count.div_ceil(self.root.segment_len as u64)).collect(),
        }
    }

    /// Every entry of the map for blocks `0..count` (loading segments through `segments`).
    pub async fn entries(
        &self,
        store: &dyn ObjectStore,
        names: &Names,
        segments: &mut SegmentCache,
        count: u64,
    ) -> Result<Vec<Pointer>> {
        match &self.root.map {
            MapRef::Inline(entries) => {
                let mut out: Vec<Pointer> = entries.iter().take(count as usize).copied().collect();
                out.resize(count as usize, Pointer::default());
                Ok(out)
            }
            MapRef::Segments(segs) => {
                let seg_len = self.root.segment_len as u64;
                let wanted = self.segments_up_to(count);
                let loaded = load_segments(store, names, &self.root, &wanted, segments).await?;
                let mut out = Vec::with_capacity(count as usize);
                for s in wanted {
                    let sp = segs.get(s as usize).copied().unwrap_or_default();
                    let take = (count - s * seg_len).min(seg_len) as usize;
                    if sp.is_null() {
                        out.resize(out.len() + take, Pointer::default());
                        continue;
                    }
                    let key = names.segment(s, &sp);
                    let entries = loaded.get(&s).ok_or_else(|| segment_not_loaded(&key))?;
                    if entries.len() < take {
                        return Err(short_segment(&key, entries.len(), take));
                    }
                    out.extend_from_slice(&entries[..take]);
                }
                Ok(out)
            }
        }
    }
}

/// Loads (in parallel) the map segments `wanted` of `root` that are not cached yet, checks that
/// each holds the entries its place needs, and returns every wanted non-null segment by index
/// (callers use what this returns: the cache may be trimmed by a later operation).
pub async fn load_segments(
    store: &dyn ObjectStore,
    names: &Names,
    root: &Root,
    wanted: &[u64],
    cache: &mut SegmentCache,
) -> Result<HashMap<u64, Arc<Vec<Pointer>>>> {
    let mut out = HashMap::new();
    let MapRef::Segments(segs) = &root.map else {
        return Ok(out);
    };
    let count = root.file_size.div_ceil(root.block_size);
    let seg_len = root.segment_len as u64;
    let mut fetch = Vec::new();
    for &s in wanted {
        if let Some(p) = segs.get(s as usize).filter(|p| !p.is_null()) {
            let key = names.segment(s, p);
            match cache.get(&key) {
                Some(entries) => {
                    out.insert(s, entries);
                }
                None if !fetch.iter().any(|(k, _)| *k == s) => fetch.push((s, key)),
                None => {}
            }
        }
    }
    let loaded = futures::future::try_join_all(fetch.into_iter().map(|(s, key)| async move {
        let body = get_required(store, &key, root.version).await?;
        let p = segs[s as usize];
        if root.is_sealed() && p.codec & codec::CODEC_SEALED == 0 {
            // A sealed root names only sealed segments.
            return Err(seal::tampered(&key));
        }
        let entries = if p.codec & codec::CODEC_SEALED != 0 {
            let keys = names.keys().ok_or_else(|| {
                seal::key_missing(&key, &seal::key_id_of(&body).unwrap_or_default())
            })?;
            let plain = keys.open(
                &key,
                &seal::object_identity(b"segment", &root.db_id, s, &p),
                &body,
            )?;
            decode_segment(&plain, &key)?
        } else {
            decode_segment(&body, &key)?
        };
        let needs = count.saturating_sub(s * seg_len).min(seg_len) as usize;
        if entries.len() < needs {
            return Err(short_segment(&key, entries.len(), needs));
        }
        Ok::<_, Error>((s, key, Arc::new(entries)))
    }))
    .await?;
    for (s, key, entries) in loaded {
        cache.insert(key, entries.clone());
        out.insert(s, entries);
    }
    Ok(out)
}

/// GETs an object a version references: a missing one is an error, never zeros.
pub async fn get_required(store: &dyn ObjectStore, key: &str, version: u64) -> Result<Bytes> {
    // One more try: a 404 right after a LIST can be a lagging replica on some stores.
    for _ in 0..2 {
        if let GetOutcome::Found(obj) = store.get(key, GetOptions::default()).await? {
            return Ok(obj.body);
        }
    }
    Err(version_gone(key, version))
}

/// Checks a block's bytes against the CRC-32C its map entry holds.
pub fn verify_block(key: &str, data: &[u8], crc: u32) -> Result<()> {
    if crc32c::crc32c(data) != crc {
        return Err(Error::new(
            codes::CORRUPT_OBJECT,
            format!("{key}: checksum mismatch (the object is damaged)"),
        ));
    }
    Ok(())
}

/// Reads and decodes root `version`; `None` when it does not exist.
pub async fn get_root(
    store: &dyn ObjectStore,
    names: &Names,
    version: u64,
) -> Result<Option<Snapshot>> {
    let key = names.root(version);
    match store.get(&key, GetOptions::default()).await? {
        GetOutcome::Found(obj) => {
            let root = names.decode_root(&obj.body, &key)?;
            if root.version != version && (root.is_sealed() || names.keys().is_some()) {
                // An authentic root under another version's key (a replay), or a plain root
                // planted in an encrypted database.
                return Err(seal::tampered(&key));
            }
            if root.version != version {
                return Err(Error::new(
                    codes::CORRUPT_OBJECT,
                    format!("{key} holds version {} instead", root.version),
                ));
            }
            Ok(Some(Snapshot {
                root: Arc::new(root),
            }))
        }
        _ => Ok(None),
    }
}

/// The newest version: `LIST P/!r/ max-keys=1`, then its root (a root can vanish between the two
/// when GC runs: then look again).
pub async fn find_head(store: &dyn ObjectStore, names: &Names) -> Result<Option<Snapshot>> {
    for _ in 0..3 {
        // A key under `P/!r/` that is not a root (a folder marker) is skipped, never read as
        // "no database".
        let Some(version) =
            first_key_where(store, &names.roots_dir(), |k| names.parse_root(k)).await?
        else {
            return Ok(None);
        };
        if let Some(s) = get_root(store, names, version).await? {
            return Ok(Some(s));
        }
    }
    Err(Error::new(
        codes::VERSION_GONE,
        format!("{}: the newest root keeps disappearing", names.roots_dir()),
    ))
}

/// The freshness check of a reader at version `v`: a GET of root(v+1). `None` means v is
/// current; otherwise the newest version (one LIST and one more GET when v+1 is not the head).
pub async fn newer_than(
    store: &dyn ObjectStore,
    names: &Names,
    v: u64,
) -> Result<Option<Snapshot>> {
    let Some(next) = get_root(store, names, v + 1).await? else {
        return Ok(None);
    };
    let head = find_head(store, names).await?;
    Ok(Some(match head {
        Some(h) if h.version() > next.version() => h,
        _ => next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_the_head_first_and_parse_strictly() {
        let n = Names::new("db/x");
        assert!(n.root(2) < n.root(1));
        assert!(n.root(u64::MAX - 1) < n.blocks_dir());
        assert!(n.root(1).as_str() < "db/x/0000000000");
        assert_eq!(n.parse_root(&n.root(77)), Some(77));
        let p = Pointer {
            version: 5,
            attempt: [0xab; 16],
            seq: 3,
            crc: 1,
            codec: 0,
        };
        let key = n.block(9, &p);
        let id = n.parse_block(&key).unwrap();
        assert_eq!(
            (id.index, id.version, id.attempt, id.seq),
            (9, 5, [0xab; 16], 3)
        );
        assert_eq!(n.parse_segment(&n.segment(2, &p)).unwrap().index, 2);
        assert!(n.parse_block("db/x/.b/zz/whatever").is_none());
        assert!(n.parse_block("db/x/archive/.b/000000000001/x").is_none());
    }

    /// A version of `count` blocks of 512 bytes whose map is in segments of 1,024 entries; only
    /// the blocks in `stored` are uploaded. Returns the root.
    fn big_version(
        store: &crate::store::memory::MemoryStore,
        count: u64,
        stored: &[u64],
    ) -> Arc<Root> {
        use super::commit::{fresh_map, Layout, Prepared};
        use super::format::Uploads;
        let names = Names::new("db");
        let mut uploads = Uploads::new(1, [7; 16], 0);
        let block = Bytes::from(vec![5u8; 512]);
        let crc = crc32c::crc32c(&block);
        let entries: Vec<Pointer> = (0..count).map(|_| uploads.next(crc, 0)).collect();
        let (map, segments) = fresh_map(
            &names,
            &entries,
            &mut uploads,
            1024,
            false,
            &Default::default(),
        )
        .unwrap();
        for (key, data) in segments {
            crate::runtime::block_on(store.put(&key, data, crate::store::PutMode::Overwrite))
                .unwrap();
        }
        for &i in stored {
            crate::runtime::block_on(store.put(
                &names.block(i, &entries[i as usize]),
                block.clone(),
                crate::store::PutMode::Overwrite,
            ))
            .unwrap();
        }
        let layout = Layout {
            page_size: 512,
            block_size: 512,
            file_size: count * 512,
            codec: Default::default(),
            codecs: false,
        };
        let mut block0 = vec![0u8; 512];
        block0[..16].copy_from_slice(b"SQLite format 3\0");
        let p = Prepared::new(
            &names,
            &uploads,
            layout,
            map,
            Bytes::from(block0),
            Vec::new(),
            Vec::new(),
        )
        .unwrap();
        crate::runtime::block_on(store.put(
            &p.root_key,
            p.root_bytes.clone(),
            crate::store::PutMode::Create,
        ))
        .unwrap();
        p.root.clone()
    }

    #[test]
    fn maps_beyond_the_segment_cache_bound_read_whole_for_gc_and_serialize() {
        // Review #1: 2,049 segments of 1,024 entries pass the cache's 2^21 bound inside one
        // `entries` call; every entry must still come back, and GC must keep every live block.
        let store = Arc::new(crate::store::memory::MemoryStore::new());
        let count = 2049 * 1024;
        let root = big_version(&store, count, &[1, 1024 * 1024, count - 1]);
        let names = Names::new("db");
        let snap = Snapshot { root };
        let mut cache = SegmentCache::default();
        let entries =
            crate::runtime::block_on(snap.entries(&*store, &names, &mut cache, count)).unwrap();
        assert_eq!(entries.len() as u64, count);
        assert!(
            entries[1..].iter().all(|p| !p.is_null()),
            "an entry read as null"
        );
        // A garbage block beside the live ones, so that the collection below deletes something.
        let garbage = names.block(
            3,
            &Pointer {
                version: 1,
                attempt: [9; 16],
                seq: 1,
                crc: 0,
                codec: 0,
            },
        );
        crate::runtime::block_on(store.put(
            &garbage,
            Bytes::from_static(b"x"),
            crate::store::PutMode::Overwrite,
        ))
        .unwrap();
        let dyn_store: crate::store::DynStore = store.clone();
        // A horizon past i64 keeps everything (it once wrapped to a negative one: keep nothing).
        let forever = crate::runtime::block_on(super::gc::collect(
            dyn_store.clone(),
            &names,
            super::gc::GcOptions {
                keep_versions: 1,
                grace_ms: u64::MAX,
                concurrency: 8,
                allow_short_grace: false,
                dry_run: false,
                progress: None,
            },
        ))
        .unwrap();
        assert_eq!(forever.objects_deleted, 0);
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        let progress = told.clone();
        let report = crate::runtime::block_on(super::gc::collect(
            dyn_store,
            &names,
            super::gc::GcOptions {
                keep_versions: 1,
                grace_ms: 0,
                concurrency: 8,
                allow_short_grace: true,
                dry_run: false,
                progress: Some(Arc::new(move |done, total| {
                    progress.lock().unwrap().push((done, total))
                })),
            },
        ))
        .unwrap();
        assert_eq!(report.objects_deleted, 1);
        assert_eq!(
            *told.lock().unwrap(),
            [(0, 1), (1, 1)],
            "progress from 0 to the total"
        );
        let blocks: Vec<String> = store
            .keys()
            .into_iter()
            .filter(|k| k.contains("/.b/"))
            .collect();
        assert_eq!(blocks.len(), 3, "GC deleted a live block: {blocks:?}");
        assert!(!blocks.contains(&garbage));
    }

    #[test]
    fn a_commit_on_a_full_segment_cache_keeps_every_unchanged_entry() {
        // Review #1, the commit path: a cache just under its bound, then a commit that touches
        // two segments; the unchanged entries of both must survive.
        use super::commit::{prepare, Layout};
        let store = Arc::new(crate::store::memory::MemoryStore::new());
        let count = 3 * 1024;
        let root = big_version(&store, count, &[]);
        let names = Names::new("db");
        let snap = Snapshot { root };
        let mut cache = SegmentCache::default();
        for k in 0..2047 {
            cache.insert(
                format!("filler-{k}"),
                Arc::new(vec![Pointer::default(); 1024]),
            );
        }
        cache.insert(
            "filler-last".into(),
            Arc::new(vec![Pointer::default(); 512]),
        );
        let changed = vec![
            (5, Bytes::from(vec![1u8; 512])),
            (2 * 1024 + 5, Bytes::from(vec![2u8; 512])),
        ];
        let layout = Layout {
            page_size: 512,
            block_size: 512,
            file_size: count * 512,
            codec: Default::default(),
            codecs: false,
        };
        let p = crate::runtime::block_on(prepare(
            &*store,
            &names,
            Some(&snap),
            &mut cache,
            changed,
            None,
            layout,
        ))
        .unwrap();
        let MapRef::Segments(segs) = &p.root.map else {
            panic!("inline map")
        };
        for s in [0u64, 2] {
            let entries = cache.get(&names.segment(s, &segs[s as usize])).unwrap();
            assert!(
                entries[1..].iter().all(|e| !e.is_null()),
                "segment {s} lost entries"
            );
        }
    }
}
