//! Imports an SQLite file into the store from a stream of chunks of any size. The bytes are
//! checked as they come (header) and at the end (size): input that is not a whole SQLite database
//! is refused and every object already uploaded is deleted. Block 0 goes last, so a reader never
//! sees a half-imported database as valid. When the prefix already holds a database (and
//! `overwrite` is set) the input is first spooled to a local temp file and validated in full, so
//! bad input never touches the existing database.

use crate::error::{codes, Error, Result};
use crate::layout::compat::CompatImport;
use crate::layout::import::{Import, ImportEnd};
use crate::layout::versioned::codec::Compression;
use crate::layout::versioned::import::VersionedImport;
use crate::layout::versioned::seal::Keyring;
use crate::layout::{Found, LayoutKind};
use crate::sqlite_header;
use crate::store::DynStore;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use tokio::task::JoinHandle;

pub struct DeserializeOptions {
    pub prefix: String,
    /// `None`: the target layout's default.
    pub block_size: Option<u64>,
    pub concurrency: usize,
    pub overwrite: bool,
    /// The layout of a new database (an existing one keeps its own).
    pub layout: Option<LayoutKind>,
    /// Versioned layout: how the imported blocks are stored (and the choice the new version records).
    pub compression: Compression,
    /// Versioned layout: the keys the import is encrypted with (a new database id is made).
    pub keys: Option<Arc<Keyring>>,
}

pub struct Deserializer {
    store: DynStore,
    opts: DeserializeOptions,
    /// The options' block size, or the target layout's default.
    block_size: u64,
    place: String,
    /// Bytes not yet cut into a block.
    pending: Vec<u8>,
    total: u64,
    next_block: u64,
    block0: Option<Bytes>,
    header: Vec<u8>,
    uploads: FuturesUnordered<JoinHandle<Result<()>>>,
    /// Replacing a database in place: the input, kept and checked in full before anything is
    /// uploaded.
    spool: Option<std::fs::File>,
    failed: bool,
    /// The layout's half: where blocks go, how the import lands or is undone.
    import: Box<dyn Import>,
}

fn not_a_database(place: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        codes::NOT_A_DATABASE,
        format!("{place}: refused to import: {why}; nothing was written"),
    )
}

impl Deserializer {
    pub async fn start(store: DynStore, opts: DeserializeOptions) -> Result<Deserializer> {
        crate::layout::validate_prefix(&opts.prefix)?;
        let place = format!("{}/{}", store.location(), opts.prefix);
        let found = crate::layout::detect(&*store, &opts.prefix).await?;
        let versioned_head = match found {
            Found::Versioned(head) => Some(head),
            Found::Nothing
                if opts.layout.unwrap_or(LayoutKind::Versioned) == LayoutKind::Versioned =>
            {
                Some(None)
            }
            _ => None,
        };
        let (import, layout, spool): (Box<dyn Import>, _, _) = match versioned_head {
            Some(head) => {
                let import = VersionedImport::start(
                    &*store,
                    &opts.prefix,
                    head,
                    opts.overwrite,
                    opts.compression,
                    opts.keys.clone(),
                    &place,
                )
                .await?;
                (Box::new(import), LayoutKind::Versioned, false)
            }
            None => {
                if opts.keys.is_some() || opts.compression != Compression::None {
                    // Never a plain import where an encrypted one was asked for.
                    return Err(Error::new(
                        codes::UNSUPPORTED,
                        format!(
                            "{place} is (or would be) in the sqlite-s3vfs layout: encryption and \
                             compression need the versioned layout"
                        ),
                    ));
                }
                let exists = matches!(found, Found::Compat);
                let (import, spool) =
                    CompatImport::start(&*store, &opts.prefix, exists, opts.overwrite, &place)
                        .await?;
                (Box::new(import), LayoutKind::Compat, spool)
            }
        };
        Ok(Deserializer {
            block_size: opts.block_size.unwrap_or(layout.default_block_size()),
            store,
            opts,
            place,
            pending: Vec::new(),
            total: 0,
            next_block: 0,
            block0: None,
            header: Vec::new(),
            uploads: FuturesUnordered::new(),
            spool: if spool { Some(tempfile()?) } else { None },
            failed: false,
            import,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::invalid("the import already failed"));
        }
        let result = self.write_inner(chunk).await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn write_inner(&mut self, chunk: &[u8]) -> Result<()> {
        self.total += chunk.len() as u64;
        if self.header.len() < sqlite_header::HEADER_LEN {
            let take = (sqlite_header::HEADER_LEN - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
            if self.header.len() == sqlite_header::HEADER_LEN {
                self.check_header()?;
            }
        }
        if let Some(spool) = self.spool.as_mut() {
            return spool
                .write_all(chunk)
                .map_err(|e| Error::new("ERR_SPOOL", format!("writing the temp file: {e}")));
        }
        // Linear in the chunk's size, whatever it is: complete the pending block, then cut
        // whole blocks straight from the chunk, and keep only the tail.
        let bs = self.block_size as usize;
        let mut rest = chunk;
        if !self.pending.is_empty() {
            let take = (bs - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < bs {
                return Ok(());
            }
            let block = std::mem::take(&mut self.pending);
            self.push_block(Bytes::from(block)).await?;
        }
        while rest.len() >= bs {
            let (block, tail) = rest.split_at(bs);
            self.push_block(Bytes::copy_from_slice(block)).await?;
            rest = tail;
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    fn check_header(&self) -> Result<()> {
        let h = &self.header;
        if !sqlite_header::has_magic(h) {
            return Err(not_a_database(
                &self.place,
                "the input does not start with the SQLite header",
            ));
        }
        if sqlite_header::page_size(h).is_none() {
            return Err(not_a_database(
                &self.place,
                "the header's page size is invalid",
            ));
        }
        Ok(())
    }

    /// Queues block `next_block` for upload, waiting while `concurrency` uploads are in flight.
    async fn push_block(&mut self, mut data: Bytes) -> Result<()> {
        let i = self.next_block;
        self.next_block += 1;
        if i == 0 {
            // A WAL-mode file (bytes 18 and 19 = 2) is marked as a rollback-journal file: only its
            // main file is imported, and WAL cannot work over S3.
            if sqlite_header::is_wal(&data) {
                let mut v = data.to_vec();
                v[18] = 1;
                v[19] = 1;
                data = Bytes::from(v);
            }
            self.block0 = Some(data);
            return Ok(());
        }
        while self.uploads.len() >= self.opts.concurrency {
            self.wait_one().await?;
        }
        let store = self.store.clone();
        let (key, data, mode) = self.import.block(i, data)?;
        self.uploads.push(crate::runtime::spawn(async move {
            store.put(&key, data, mode).await.map(|_| ())
        }));
        Ok(())
    }

    async fn wait_one(&mut self) -> Result<()> {
        if let Some(done) = self.uploads.next().await {
            done.map_err(|e| Error::internal(format!("upload task failed: {e}")))??;
        }
        Ok(())
    }

    fn validate_end(&self) -> Result<()> {
        if self.total == 0 {
            return Err(not_a_database(&self.place, "the input is empty"));
        }
        if self.header.len() < sqlite_header::HEADER_LEN {
            return Err(not_a_database(
                &self.place,
                "the input is shorter than an SQLite header",
            ));
        }
        let page_size = sqlite_header::page_size(&self.header).unwrap_or(0) as u64;
        if page_size == 0 || !self.total.is_multiple_of(page_size) {
            return Err(not_a_database(
                &self.place,
                format!(
                    "{} bytes is not a whole number of {page_size}-byte pages (truncated?)",
                    self.total
                ),
            ));
        }
        if let Some(expected) = sqlite_header::file_size(&self.header) {
            if self.total < expected {
                return Err(not_a_database(
                    &self.place,
                    format!(
                        "the header promises {expected} bytes but the input has {} (truncated)",
                        self.total
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Ends the import; returns the number of bytes stored.
    pub async fn finish(&mut self) -> Result<u64> {
        if self.failed {
            return Err(Error::invalid("the import already failed"));
        }
        let result = self.finish_inner().await;
        match &result {
            // The root may have landed and reference these blocks: leave them to GC.
            Err(e) if e.is_unknown_outcome() => self.failed = true,
            Err(_) => self.abort().await,
            Ok(_) => {}
        }
        result
    }

    async fn finish_inner(&mut self) -> Result<u64> {
        self.validate_end()?;
        if let Some(mut spool) = self.spool.take() {
            // Validated in full: now replay the spooled bytes as blocks.
            spool
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::new("ERR_SPOOL", e.to_string()))?;
            let bs = self.block_size as usize;
            loop {
                let mut block = vec![0u8; bs];
                let n = read_full(&mut spool, &mut block)?;
                if n == 0 {
                    break;
                }
                block.truncate(n);
                self.push_block(Bytes::from(block)).await?;
            }
        } else if !self.pending.is_empty() {
            let last = Bytes::from(std::mem::take(&mut self.pending));
            self.push_block(last).await?;
        }
        while !self.uploads.is_empty() {
            self.wait_one().await?;
        }
        let end = ImportEnd {
            block0: self.block0.take(),
            total: self.total,
            blocks: self.next_block,
            block_size: self.block_size,
            page_size: sqlite_header::page_size(&self.header).unwrap_or(0),
            concurrency: self.opts.concurrency,
        };
        self.import.finish(&self.store, end).await?;
        Ok(self.total)
    }

    /// Deletes what this import uploaded (never the blocks of a database that was there before:
    /// those are only touched after validation).
    pub async fn abort(&mut self) {
        self.failed = true;
        while let Some(done) = self.uploads.next().await {
            let _ = done;
        }
        self.import.abort(&self.store, self.opts.concurrency).await;
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::new(
                    "ERR_SPOOL",
                    format!("reading the temp file: {e}"),
                ))
            }
        }
    }
    Ok(n)
}

/// An anonymous temp file: unlinked at once, so it disappears with the process.
fn tempfile() -> Result<std::fs::File> {
    let name = format!(
        "sqlite-s3vfs-import-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let path = std::env::temp_dir().join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::new("ERR_SPOOL", format!("creating a temp file: {e}")))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::versioned::commit::MAX_BASE_AGE;
    use crate::store::memory::MemoryStore;
    use crate::store::ObjectStore;
    use std::sync::Arc;

    /// A real SQLite file of about `pages` pages of 4096 bytes.
    fn sqlite_file(pages: u32) -> Vec<u8> {
        let path = std::env::temp_dir().join(format!("s3vfs-import-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA page_size=4096; CREATE TABLE t(x BLOB)")
            .unwrap();
        for _ in 0..pages {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        drop(conn);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        bytes
    }

    async fn import_with_pause(
        store: &Arc<MemoryStore>,
        file: &[u8],
        collect: bool,
    ) -> Result<u64> {
        let dyn_store: DynStore = store.clone();
        let mut d = Deserializer::start(
            dyn_store,
            DeserializeOptions {
                prefix: "db".into(),
                block_size: Some(4096),
                concurrency: 4,
                overwrite: false,
                layout: None,
                compression: Default::default(),
                keys: None,
            },
        )
        .await?;
        let half = file.len() / 2;
        d.write(&file[..half]).await?;
        while !d.uploads.is_empty() {
            d.wait_one().await?;
        }
        // The source stalls longer than the base age (as if for an hour)...
        d.import.pretend_paused(MAX_BASE_AGE * 2);
        if collect {
            // ... and GC took the attempt's early blocks for an abandoned attempt's.
            for key in store.keys().into_iter().filter(|k| k.contains("/.b/")) {
                store.delete(&key).await?;
            }
        }
        d.write(&file[half..]).await?;
        d.finish().await
    }

    #[test]
    fn an_import_paused_past_the_gc_horizon_never_publishes_over_collected_blocks() {
        // Review #12.
        let file = sqlite_file(40);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let e = import_with_pause(&store, &file, true).await.unwrap_err();
            assert_eq!(e.code, codes::VERSION_GONE, "{e:?}");
            assert!(
                store.keys().iter().all(|k| !k.contains("/!r/")),
                "a root was published"
            );
            // The same pause with nothing collected: the blocks are checked and the import lands.
            let store = Arc::new(MemoryStore::new());
            assert_eq!(
                import_with_pause(&store, &file, false).await.unwrap(),
                file.len() as u64
            );
            assert_eq!(
                store.keys().iter().filter(|k| k.contains("/!r/")).count(),
                1
            );
        });
    }
}
