//! A store in a local directory, with S3's semantics (`options.store = { dir }`): for developing
//! and testing apps with no S3 server. Buckets are folders, objects are files, and every
//! guarantee the layouts rely on holds across processes:
//!
//! - a write lands whole or not at all: the body goes to a temp file, then `rename` (replace) or
//!   `link` (create-only: fails if the name exists, atomically — never check-then-write);
//! - writes and deletes of one folder are serialized by an exclusive lock on its `.lock` file,
//!   so a conditional update (`If-Match`) compares and replaces in one step;
//! - listings are in UTF-8 byte order, paged like S3's (`next_start_after` when truncated).
//!
//! Names: key segments (split at `/`) become folders, the last one a file `<segment>.o`; every
//! byte outside `[A-Za-z0-9_-]` is percent-encoded (so no name is `.`, `..` or hidden, and no
//! object file collides with a folder) and an empty segment is `%`. Files of other names (temp
//! files, locks) are never listed. Durable against a process crash, not a power loss (no fsync).

use super::{
    BoxFuture, GetOptions, GetOutcome, ListPage, Object, ObjectMeta, ObjectStore, PutMode,
};
use crate::error::{codes, Error, ErrorKind, Result};
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const PAGE: usize = 1000;
const SUFFIX: &str = ".o";

pub struct DirStore {
    /// The bucket's folder.
    root: PathBuf,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::new("ERR_STORE_IO", format!("{}: {e}", path.display()))
}

fn encode_segment(s: &str) -> String {
    if s.is_empty() {
        return "%".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
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
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// A file's identity as an ETag: every write is a new file (temp file, then rename or link).
fn etag_of(meta: &fs::Metadata) -> String {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0u64;
    format!("\"{ino:x}-{nanos:x}-{:x}\"", meta.len())
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
        fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
        Ok(DirStore { root })
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
        let etag = etag_of(&meta);
        if opts.if_none_match.as_deref() == Some(etag.as_str()) {
            return Ok(GetOutcome::NotModified);
        }
        let len = meta.len();
        let (start, end) = opts.range.unwrap_or((0, len));
        let (start, end) = (start.min(len), end.min(len).max(start.min(len)));
        let mut body = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut body))
            .map_err(|e| io_error(&path, e))?;
        Ok(GetOutcome::Found(Object {
            body: Bytes::from(body),
            etag: Some(etag),
            last_modified_ms: modified_ms(&meta),
        }))
    }

    fn put_sync(&self, key: &str, body: &[u8], mode: PutMode) -> Result<Option<String>> {
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        Self::locked(&dir, || {
            let tmp = dir.join(format!(
                ".tmp-{}",
                crate::layout::versioned::new_attempt_id()
                    .map(|a| a.iter().map(|b| format!("{b:02x}")).collect::<String>())?
            ));
            let written = File::create(&tmp).and_then(|mut f| f.write_all(body));
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
            let outcome = match &mode {
                PutMode::Overwrite | PutMode::Rewrite => {
                    fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
                }
                // Atomic across processes whatever the lock: link fails if the name exists.
                PutMode::Create => match fs::hard_link(&tmp, &path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == IoKind::AlreadyExists => Err(precondition()),
                    Err(e) => Err(io_error(&path, e)),
                },
                PutMode::Update(want) => match fs::metadata(&path) {
                    Ok(meta) if etag_of(&meta) == *want => {
                        fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))
                    }
                    Ok(_) => Err(precondition()),
                    Err(e) if e.kind() == IoKind::NotFound => Err(precondition()),
                    Err(e) => Err(io_error(&path, e)),
                },
            };
            let _ = fs::remove_file(&tmp);
            outcome?;
            let meta = fs::metadata(&path).map_err(|e| io_error(&path, e))?;
            Ok(Some(etag_of(&meta)))
        })
    }

    fn delete_sync(&self, key: &str) -> Result<()> {
        let path = self.path_of(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        if !dir.exists() {
            return Ok(());
        }
        Self::locked(&dir, || match fs::remove_file(&path) {
            Err(e) if e.kind() != IoKind::NotFound => Err(io_error(&path, e)),
            _ => Ok(()),
        })
    }

    fn head_sync(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path_of(key);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: meta.len(),
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
                        size: meta.len(),
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

/// Runs blocking file work off the runtime's async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a file operation panicked: {e}")))?
}

impl ObjectStore for DirStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn get<'a>(&'a self, key: &'a str, opts: GetOptions) -> BoxFuture<'a, Result<GetOutcome>> {
        let (store, key) = (self.clone_root(), key.to_string());
        Box::pin(blocking(move || store.get_sync(&key, opts)))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        mode: PutMode,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        let (store, key) = (self.clone_root(), key.to_string());
        Box::pin(blocking(move || store.put_sync(&key, &body, mode)))
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        max_keys: Option<u32>,
    ) -> BoxFuture<'a, Result<ListPage>> {
        let (store, prefix, after) = (
            self.clone_root(),
            prefix.to_string(),
            start_after.map(str::to_string),
        );
        Box::pin(blocking(move || {
            store.list_sync(&prefix, after.as_deref(), max_keys)
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<()>> {
        let (store, key) = (self.clone_root(), key.to_string());
        Box::pin(blocking(move || store.delete_sync(&key)))
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectMeta>>> {
        let (store, key) = (self.clone_root(), key.to_string());
        Box::pin(blocking(move || store.head_sync(&key)))
    }
}

impl DirStore {
    /// A handle for a blocking task (the store is only its folder).
    fn clone_root(&self) -> DirStore {
        DirStore {
            root: self.root.clone(),
        }
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
        ] {
            let e = encode_segment(s);
            assert!(!e.contains('.') && !e.is_empty(), "{s:?} -> {e}");
            assert_eq!(decode_segment(&e).as_deref(), Some(s));
        }
        assert_eq!(decode_segment(".tmp-1"), None);
        assert_eq!(decode_segment("%4"), None);
    }
}
