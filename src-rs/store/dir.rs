//! A store in a local directory, with S3's semantics (`options.store = { dir }`): for developing
//! and testing apps with no S3 server. Buckets are folders, objects are files, and every
//! guarantee the layouts rely on holds across processes:
//!
//! - a write lands whole or not at all: the body goes to a temp file (in the bucket's `.tmp/`),
//!   then `rename` (replace) or `link` (create-only: fails if the name exists, atomically —
//!   never check-then-write);
//! - writes and deletes of one folder are serialized by an exclusive lock on its `.lock` file,
//!   so a conditional update (`If-Match`) compares and replaces in one step; a write or delete
//!   whose caller gave up (a timeout) is abandoned once it holds the lock, so it never lands
//!   after the resend that followed it;
//! - an object's ETag is a random id written at the head of its file, new for every write (file
//!   times and inode numbers repeat);
//! - listings are in UTF-8 byte order, paged like S3's (`next_start_after` when truncated).
//!
//! Names: key segments (split at `/`) become folders, the last one a file `<segment>.o`; every
//! byte outside `[a-z0-9_-]` is percent-encoded (so no name is `.`, `..` or hidden, no object
//! file collides with a folder, and names differing in case stay apart on case-insensitive file
//! systems), an empty segment is `%`, and Windows' reserved names are escaped. Files of other
//! names (locks, temp files) are never listed. Durable against a process crash, not a power loss
//! (no fsync).

use super::{
    BoxFuture, GetOptions, GetOutcome, ListPage, Object, ObjectMeta, ObjectStore, PutMode,
};
use crate::error::{codes, Error, ErrorKind, Result};
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PAGE: usize = 1000;
const SUFFIX: &str = ".o";
/// The random id at the head of every object file (its ETag).
const ID_LEN: usize = 16;
/// Temp files older than this are a killed writer's (a live one renames its file at once).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(600);
/// Windows refuses these as file or folder names, whatever the extension.
const RESERVED: [&str; 22] = [
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Cloned into each blocking task: the store is only its folder.
#[derive(Clone)]
pub struct DirStore {
    /// The bucket's folder.
    root: PathBuf,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    // EMFILE (too many open files) passes; so do interruptions.
    let transient = matches!(
        e.kind(),
        IoKind::Interrupted | IoKind::WouldBlock | IoKind::TimedOut | IoKind::ResourceBusy
    ) || e.raw_os_error() == Some(24);
    let err = Error::new(codes::STORE_IO, format!("{}: {e}", path.display()));
    if transient {
        err.with_kind(ErrorKind::Transient)
    } else {
        err
    }
}

fn abandoned(key: &str) -> Error {
    Error::new(
        codes::STORE_IO,
        format!("{key}: the caller gave up on this write before it took effect"),
    )
    .with_kind(ErrorKind::Transient)
}

/// Bytes kept as they are in names (lowercase only: case-insensitive file systems).
fn plain(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

fn encode_segment(s: &str) -> String {
    if s.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if RESERVED.contains(&out.as_str()) {
        out = format!("%{:02X}{}", out.as_bytes()[0], &out[1..]);
    }
    out
}

fn decode_segment(s: &str) -> Option<String> {
    if s == "%" {
        return Some(String::new());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    // Only the one spelling this store writes: a file named otherwise is not ours.
    (encode_segment(&decoded) == s).then_some(decoded)
}

fn etag_of(id: &[u8]) -> String {
    format!(
        "\"{}\"",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Reads the id at the head of an object file: its ETag.
fn read_id(file: &mut File, path: &Path) -> Result<[u8; ID_LEN]> {
    let mut id = [0u8; ID_LEN];
    file.read_exact(&mut id).map_err(|e| io_error(path, e))?;
    Ok(id)
}

fn modified_ms(meta: &fs::Metadata) -> Option<i64> {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
}

impl DirStore {
    /// The bucket `bucket` under `dir` (both created when missing).
    pub fn open(dir: &Path, bucket: &str) -> Result<DirStore> {
        let root = dir.join(encode_segment(bucket));
        fs::create_dir_all(root.join(".tmp")).map_err(|e| io_error(&root, e))?;
        // One spelling per folder: a later chdir changes nothing, and identities agree.
        let root = fs::canonicalize(&root).map_err(|e| io_error(&root, e))?;
        let store = DirStore { root };
        store.sweep_temp_files();
        Ok(store)
    }

    /// Removes the temp files of writers killed mid-write.
    fn sweep_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.root.join(".tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn path_of(&self, key: &str) -> PathBuf {
        let mut segments: Vec<&str> = key.split('/').collect();
        let last = segments.pop().unwrap_or_default();
        let mut path = self.root.clone();
        for s in segments {
            path.push(encode_segment(s));
        }
        path.push(format!("{}{SUFFIX}", encode_segment(last)));
        path
    }

    /// Runs `f` holding the exclusive lock of `dir` (created when missing).
    fn locked<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        lock.lock().map_err(|e| io_error(&lock_path, e))?;
        let result = f();
        let _ = lock.unlock();
        result
    }

    fn get_sync(&self, key: &str, opts: GetOptions) -> Result<GetOutcome> {
        let path = self.path_of(key);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(GetOutcome::NotFound),
            Err(e) => return Err(io_error(&path, e)),
        };
        let meta = file.metadata().map_err(|e| io_error(&path, e))?;
        let etag = etag_of(&read_id(&mut file, &path)?);
        if opts.if_none_match.as_deref() == Some(etag.as_str()) {
            return Ok(GetOutcome::NotModified);
        }
        let len = meta.len().saturating_sub(ID_LEN as u64);
        let (start, end) = opts.range.unwrap_or((0, len));
        let (start, end) = (start.min(len), end.min(len).max(start.min(len)));
        let mut body = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(ID_LEN as u64 + start))
            .and_then(|_| file.read_exact(&mut body))
            .map_err(|e| io_error(&path, e))?;
        Ok(GetOutcome::Found(Object {
            body: Bytes::from(body),
            etag: Some(etag),
            last_modified_ms: modified_ms(&meta),
        }))
    }

    fn put_sync(
        &self,
        key: &str,
        body: &[u8],
        mode: PutMode,
        cancelled: &AtomicBool,
    ) -> Result<Option<String>> {
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let id: [u8; ID_LEN] = crate::layout::versioned::new_attempt_id()?;
        let tmp = self.root.join(".tmp").join(etag_of(&id).trim_matches('"'));
        let written = File::create(&tmp).and_then(|mut f| {
            f.write_all(&id)?;
            f.write_all(body)
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(&tmp, e));
        }
        let precondition = || {
            Error::new(
                codes::PRECONDITION_FAILED,
                format!("{key}: precondition failed"),
            )
            .with_kind(ErrorKind::Conflict)
        };
        let outcome = Self::locked(&dir, || {
            if cancelled.load(Ordering::SeqCst) {
                return Err(abandoned(key));
            }
            match &mode {
                PutMode::Overwrite | PutMode::Rewrite => {
                    fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
                }
                // Atomic across processes whatever the lock: link fails if the name exists.
                PutMode::Create => match fs::hard_link(&tmp, &path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == IoKind::AlreadyExists => Err(precondition()),
                    Err(e) => Err(io_error(&path, e)),
                },
                PutMode::Update(want) => {
                    let current = match File::open(&path) {
                        Ok(mut f) => Some(etag_of(&read_id(&mut f, &path)?)),
                        Err(e) if e.kind() == IoKind::NotFound => None,
                        Err(e) => return Err(io_error(&path, e)),
                    };
                    if current.as_deref() == Some(want.as_str()) {
                        fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
                    } else {
                        Err(precondition())
                    }
                }
            }
        });
        let _ = fs::remove_file(&tmp);
        outcome.map(|_| Some(etag_of(&id)))
    }

    fn delete_sync(&self, key: &str, cancelled: &AtomicBool) -> Result<()> {
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        if !dir.exists() {
            return Ok(());
        }
        Self::locked(&dir, || {
            if cancelled.load(Ordering::SeqCst) {
                return Err(abandoned(key));
            }
            match fs::remove_file(&path) {
                Err(e) if e.kind() != IoKind::NotFound => Err(io_error(&path, e)),
                _ => Ok(()),
            }
        })
    }

    fn head_sync(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path_of(key);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: meta.len().saturating_sub(ID_LEN as u64),
                last_modified_ms: modified_ms(&meta),
            })),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// Every key under `dir` (whose key prefix is `base`), with its metadata.
    fn walk(dir: &Path, base: &str, out: &mut Vec<ObjectMeta>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let file_type = entry.file_type().map_err(|e| io_error(dir, e))?;
            if file_type.is_dir() {
                if let Some(segment) = decode_segment(name) {
                    Self::walk(&entry.path(), &format!("{base}{segment}/"), out)?;
                }
            } else if let Some(segment) = name.strip_suffix(SUFFIX).and_then(decode_segment) {
                // A file deleted meanwhile is simply not listed.
                if let Ok(meta) = entry.metadata() {
                    out.push(ObjectMeta {
                        key: format!("{base}{segment}"),
                        size: meta.len().saturating_sub(ID_LEN as u64),
                        last_modified_ms: modified_ms(&meta),
                    });
                }
            }
        }
        Ok(())
    }

    fn list_sync(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: Option<u32>,
    ) -> Result<ListPage> {
        // Walk from the deepest folder the prefix names whole.
        let (dir, base) = match prefix.rfind('/') {
            Some(at) => {
                let mut dir = self.root.clone();
                for s in prefix[..at].split('/') {
                    dir.push(encode_segment(s));
                }
                (dir, &prefix[..=at])
            }
            None => (self.root.clone(), ""),
        };
        let mut all = Vec::new();
        Self::walk(&dir, base, &mut all)?;
        all.retain(|o| o.key.starts_with(prefix) && start_after.is_none_or(|a| o.key.as_str() > a));
        all.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        // A name replaced while its folder was read can be seen twice.
        all.dedup_by(|a, b| a.key == b.key);
        let limit = max_keys.map(|m| m as usize).unwrap_or(PAGE).min(PAGE);
        let truncated = all.len() > limit;
        all.truncate(limit);
        Ok(ListPage {
            next_start_after: if truncated {
                all.last().map(|o| o.key.clone())
            } else {
                None
            },
            objects: all,
        })
    }
}

/// Runs blocking file work off the runtime's async threads. The work is told (`cancelled`) when
/// its caller gives up on it (the future is dropped: a timeout), so a write not yet applied is
/// abandoned instead of landing after whatever the caller did next.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce(&AtomicBool) -> Result<T> + Send + 'static,
) -> Result<T> {
    struct CancelOnDrop(Arc<AtomicBool>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    tokio::task::spawn_blocking(move || f(&cancelled))
        .await
        .map_err(|e| Error::internal(format!("a file operation did not finish: {e}")))?
}

impl ObjectStore for DirStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>> {
        let (store, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move |_| store.get_sync(&key, opts)))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let (store, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move |cancelled| {
            store.put_sync(&key, &body, mode, cancelled)
        }))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        let (store, prefix, after) = (
            self.clone(),
            prefix.to_string(),
            start_after.map(str::to_string),
        );
        Box::pin(blocking(move |_| {
            store.list_sync(&prefix, after.as_deref(), max_keys)
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        let (store, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move |cancelled| {
            store.delete_sync(&key, cancelled)
        }))
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        let (store, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move |_| store.head_sync(&key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_never_name_dot_folders() {
        for s in [
            "",
            ".",
            "..",
            "a.o",
            "!r",
            "0000000001",
            "x y",
            "ü",
            "%",
            "a-b_c",
            "App",
            "nul",
            "COM1",
            "con",
        ] {
            let e = encode_segment(s);
            assert!(!e.contains('.') && !e.is_empty(), "{s:?} -> {e}");
            assert!(
                !RESERVED.contains(&e.to_ascii_lowercase().as_str()),
                "{s:?} -> {e}"
            );
            assert_eq!(decode_segment(&e).as_deref(), Some(s));
        }
        // Names differing only in case stay apart on case-insensitive file systems.
        assert_ne!(
            encode_segment("App").to_lowercase(),
            encode_segment("app").to_lowercase()
        );
        assert_eq!(decode_segment(".tmp-1"), None);
        assert_eq!(decode_segment("%4"), None);
        // Another spelling of a name this store writes is not ours.
        assert_eq!(decode_segment("%61"), None);
    }

    #[test]
    fn every_write_has_a_new_etag_even_with_the_same_length_and_time() {
        // Red team: inode and mtime repeat (a freed inode reused within one clock tick), and a
        // reader that cached block 0 by ETag would keep stale pages.
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path(), "b").unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut seen = std::collections::HashSet::new();
            for i in 0..200u32 {
                let body = Bytes::from(vec![(i % 7) as u8; 4096]);
                let etag = store
                    .put("p/0", body, PutMode::Rewrite)
                    .await
                    .unwrap()
                    .unwrap();
                assert!(seen.insert(etag.clone()), "write {i} repeated an ETag");
                let GetOutcome::Found(obj) = store.get("p/0", GetOptions::default()).await.unwrap()
                else {
                    panic!("p/0")
                };
                assert_eq!(obj.etag.as_deref(), Some(etag.as_str()));
            }
        });
    }

    #[test]
    fn a_write_abandoned_by_its_caller_never_lands_after_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path(), "b").unwrap();
        // The caller gave up before the write took the lock: it is not applied.
        let cancelled = AtomicBool::new(true);
        let e = store
            .put_sync("p/k", b"old", PutMode::Rewrite, &cancelled)
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(store.head_sync("p/k").unwrap().is_none());
        let live = AtomicBool::new(false);
        store
            .put_sync("p/k", b"new", PutMode::Rewrite, &live)
            .unwrap();
        assert!(store.delete_sync("p/k", &cancelled).is_err());
        assert!(store.head_sync("p/k").unwrap().is_some());
        // No temp file stays behind.
        assert_eq!(fs::read_dir(store.root.join(".tmp")).unwrap().count(), 0);
    }
}
