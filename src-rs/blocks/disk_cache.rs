//! Blocks kept on local disk across processes (`options.cacheDir`, e.g. a Lambda's `/tmp`), for
//! the versioned layout, whose block objects are immutable: a file named after the object's key
//! holds its bytes forever, and readers check them against the CRC-32C in the block map, so a
//! damaged or foreign file is only a miss.
//!
//! Safe with several processes: files are written to a temporary name and renamed into place
//! (a reader sees all of a file or none of it); eviction and deletion of the whole directory
//! are at worst misses. Bounded: past `max_bytes` the least recently used files (by mtime,
//! refreshed on every hit) are deleted until the directory is at 90%.

use std::collections::HashMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes in the directory as far as this process knows (others write too: re-measured at
    /// every eviction).
    used: AtomicU64,
    accounting: Mutex<()>,
}

impl DiskCache {
    /// The process's one cache for `dir` (two databases sharing it share its accounting).
    pub fn shared(dir: &Path, max_bytes: u64) -> Arc<DiskCache> {
        static CACHES: OnceLock<Mutex<HashMap<PathBuf, Arc<DiskCache>>>> = OnceLock::new();
        let mut caches = CACHES.get_or_init(Default::default).lock().unwrap();
        caches
            .entry(dir.to_path_buf())
            .or_insert_with(|| Arc::new(DiskCache::open(dir, max_bytes)))
            .clone()
    }

    /// A cache over `dir`, its accounting started from what the directory holds now.
    fn open(dir: &Path, max_bytes: u64) -> DiskCache {
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            max_bytes,
            used: AtomicU64::new(0),
            accounting: Mutex::new(()),
        };
        cache.used.store(cache.measure().0, Relaxed);
        cache
    }

    /// Where the object `key` of `location` (bucket) is kept: a 128-bit name from two hashes,
    /// in one of 256 subdirectories.
    fn path(&self, location: &str, key: &str) -> PathBuf {
        let hash = |seed: u64| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            seed.hash(&mut h);
            location.hash(&mut h);
            key.hash(&mut h);
            h.finish()
        };
        let (a, b) = (hash(1), hash(2));
        self.dir
            .join(format!("{:02x}", a >> 56))
            .join(format!("{a:016x}{b:016x}"))
    }

    /// The bytes kept for this object, if any (the caller verifies them).
    pub fn get(&self, location: &str, key: &str) -> Option<Vec<u8>> {
        let path = self.path(location, key);
        let data = fs::read(&path).ok()?;
        // Recently used: eviction goes by mtime.
        if let Ok(f) = fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(data)
    }

    /// Keeps an object's bytes; failures (a full or vanished disk) only cost a later miss. The
    /// caller puts only bytes it just read from the store because what was kept here (if
    /// anything) failed verification: a damaged file is replaced, never kept.
    pub fn put(&self, location: &str, key: &str, data: &[u8]) {
        let path = self.path(location, key);
        let Some(parent) = path.parent() else {
            return;
        };
        let tmp = parent.join(format!(
            ".tmp-{}-{:x}",
            std::process::id(),
            rand_u64().unwrap_or(0)
        ));
        let replaced = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let written = private_dir(parent)
            .and_then(|_| private_file(&tmp))
            .and_then(|mut f| f.write_all(data))
            .and_then(|_| fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        // Accounting under the lock, after the rename: an eviction's measurement either saw this
        // file or comes before this addition.
        let over = {
            let _guard = self.accounting.lock().unwrap();
            let used = (self.used.load(Relaxed) + data.len() as u64).saturating_sub(replaced);
            self.used.store(used, Relaxed);
            used > self.max_bytes
        };
        if over {
            let evict = || {
                let _guard = self.accounting.lock().unwrap();
                self.evict();
            };
            // Eviction walks the whole directory. On one of the runtime's I/O workers it runs
            // in `block_in_place`, which hands that worker's other tasks (every S3 request of
            // the process) to another thread meanwhile; the bound still holds when this returns.
            match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(evict)
                }
                _ => evict(),
            }
        }
    }

    /// Total bytes and every file with its size and mtime.
    fn measure(&self) -> (u64, Vec<(SystemTime, u64, PathBuf)>) {
        let mut files = Vec::new();
        let mut total = 0;
        for sub in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            for f in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
                if let Ok(meta) = f.metadata() {
                    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    total += meta.len();
                    files.push((mtime, meta.len(), f.path()));
                }
            }
        }
        (total, files)
    }

    /// Deletes the least recently used files down to 90% of the bound (under `accounting`).
    fn evict(&self) {
        let (mut total, mut files) = self.measure();
        files.sort();
        let target = self.max_bytes / 10 * 9;
        for (_, len, path) in files {
            if total <= target {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        self.used.store(total, Relaxed);
    }
}

/// Cached database content is readable by this user only (a shared `/tmp` has other users).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn rand_u64() -> Option<u64> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_blocks_across_instances_and_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("s3vfs-disk-cache-{}", rand_u64().unwrap()));
        let cache = DiskCache::shared(&dir, 10_000);
        cache.put("s3://b", "p/.b/1", &[1u8; 4000]);
        assert_eq!(cache.get("s3://b", "p/.b/1"), Some(vec![1u8; 4000]));
        assert_eq!(cache.get("s3://other", "p/.b/1"), None);
        // A fresh accounting (another process) sees what is on disk.
        let other = DiskCache::open(&dir, 10_000);
        assert_eq!(other.used.load(Relaxed), 4000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put("s3://b", "p/.b/2", &[2u8; 4000]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.get("s3://b", "p/.b/1");
        cache.put("s3://b", "p/.b/3", &[3u8; 4000]);
        // Over 10,000 bytes: the least recently used (block 2) went.
        assert!(cache.get("s3://b", "p/.b/2").is_none());
        assert!(cache.get("s3://b", "p/.b/1").is_some());
        assert!(cache.get("s3://b", "p/.b/3").is_some());
        assert!(cache.measure().0 <= 9_000);
        // Deleting the directory is only misses; it comes back on the next put.
        fs::remove_dir_all(&dir).unwrap();
        assert!(cache.get("s3://b", "p/.b/1").is_none());
        cache.put("s3://b", "p/.b/4", &[4u8; 10]);
        assert_eq!(cache.get("s3://b", "p/.b/4"), Some(vec![4u8; 10]));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_file_is_replaced_and_files_are_private() {
        let dir = std::env::temp_dir().join(format!("s3vfs-disk-cache-{}", rand_u64().unwrap()));
        let cache = DiskCache::shared(&dir, 1 << 20);
        cache.put("s3://b", "p/.b/1", &[1u8; 100]);
        // Damage it (a torn write after a power loss): the caller's CRC check fails, it reads the
        // store again and puts the good bytes, which must replace the bad ones.
        let path = cache.path("s3://b", "p/.b/1");
        fs::write(&path, [9u8; 10]).unwrap();
        cache.put("s3://b", "p/.b/1", &[1u8; 100]);
        assert_eq!(cache.get("s3://b", "p/.b/1"), Some(vec![1u8; 100]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file_mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            let dir_mode = fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!((file_mode, dir_mode), (0o600, 0o700));
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
