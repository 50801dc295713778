//! Imports an SQLite file into the store from a stream of chunks of any size. The bytes are
//! checked as they come (header) and at the end (size): input that is not a whole SQLite database
//! is refused and every object already uploaded is deleted. Block 0 goes last, so a reader never
//! sees a half-imported database as valid. When the prefix already holds a database (and
//! `overwrite` is set) the input is first spooled to a local temp file and validated in full, so
//! bad input never touches the existing database.

use crate::clock::Stamp;
use crate::error::{codes, Error, Result};
use crate::layout::compat::{journal_prefix, list_blocks, BlockKeys};
use crate::layout::versioned::codec::{BlockCodec, Compression};
use crate::layout::versioned::commit::{
    fresh_map, publish_root, Layout, Outcome, Prepared, MAX_BASE_AGE,
};
use crate::layout::versioned::format::{is_sealed_root, Pointer, Uploads, SEALED_FLAG_PREFIX_LEN};
use crate::layout::versioned::seal::{new_database_id, Keyring};
use crate::layout::versioned::{new_attempt_id, Names};
use crate::layout::{Found, LayoutKind};
use crate::sqlite_header;
use crate::store::{delete_keys, DynStore, GetOptions, GetOutcome, PutMode};
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

/// A versioned import: every block goes to a key of this attempt, and nothing is visible until
/// the root of the next version is created, so an existing database is never touched by a
/// failed or refused import.
struct VersionedImport {
    names: Names,
    /// How the blocks are stored: compressed, sealed under the new database's id.
    codec: BlockCodec,
    /// The version this import creates, its attempt id, and its upload numbers.
    uploads: Uploads,
    observed: Stamp,
    /// Map entries of the blocks uploaded so far (index = block).
    entries: Vec<Pointer>,
    /// When the last block upload started, and the longest pause between two so far. GC spares
    /// an attempt's objects while its newest one is younger than the horizon; a pause longer than
    /// `MAX_BASE_AGE` (the horizon is at least three times that) means earlier blocks may be
    /// gone, so they are checked before the root names them.
    last_upload: Option<Stamp>,
    longest_pause: std::time::Duration,
}

impl VersionedImport {
    /// The keys of the blocks this import uploaded (its own attempt's keys only).
    fn block_keys(&self) -> Vec<String> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_null())
            .map(|(i, p)| self.names.block(i as u64, p))
            .collect()
    }

    fn note_upload(&mut self) {
        if let Some(last) = self.last_upload {
            self.longest_pause = self.longest_pause.max(last.elapsed());
        }
        self.last_upload = Some(Stamp::now());
    }
}

pub struct Deserializer {
    store: DynStore,
    keys: BlockKeys,
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
    /// Blocks (by index) that may have reached the store.
    uploaded_up_to: u64,
    /// Objects of the database that was there before (overwrite), to delete past the new end.
    existing: Vec<String>,
    spool: Option<std::fs::File>,
    failed: bool,
    /// The root create was sent: it may have landed, so nothing of this import is deleted.
    root_sent: bool,
    /// `sqlite-s3vfs` layout: block 0 may be in the store (its PUT was sent and not proven
    /// absent), so the blocks it describes must stay.
    block0_sent: bool,
    versioned: Option<VersionedImport>,
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
        let keys = BlockKeys::new(opts.prefix.clone());
        let place = format!("{}/{}", store.location(), opts.prefix);
        let found = crate::layout::detect(&*store, &opts.prefix).await?;
        let mut existing = Vec::new();
        let mut spool = None;
        let versioned_head = match found {
            Found::Versioned(head) => Some(head),
            Found::Nothing
                if opts.layout.unwrap_or(LayoutKind::Versioned) == LayoutKind::Versioned =>
            {
                Some(None)
            }
            _ => None,
        };
        if let (Found::Versioned(Some(head)), None, true) = (&found, &opts.keys, opts.overwrite) {
            // Never a plain version on top of an encrypted database by mistake (an unset key
            // variable): its header says whether it is sealed.
            let key = Names::new(opts.prefix.clone()).root(*head);
            let range = GetOptions {
                range: Some((0, SEALED_FLAG_PREFIX_LEN)),
                if_none_match: None,
            };
            if let GetOutcome::Found(obj) = store.get(&key, range).await? {
                if is_sealed_root(&obj.body) {
                    return Err(Error::new(
                        codes::KEY_MISSING,
                        format!(
                            "{place} is encrypted: give its key (options.encryption) to replace it"
                        ),
                    ));
                }
            }
        }
        if matches!(found, Found::Versioned(Some(_))) && !opts.overwrite {
            return Err(Error::new(
                codes::DATABASE_EXISTS,
                format!(
                    "{place} already holds a database; pass {{ overwrite: true }} to replace it"
                ),
            ));
        }
        let versioned = match versioned_head {
            Some(head) => Some(VersionedImport {
                names: Names::with_keys(opts.prefix.clone(), opts.keys.clone()),
                codec: BlockCodec {
                    compression: opts.compression,
                    keys: opts.keys.clone(),
                    db: new_database_id()?,
                },
                uploads: Uploads::new(head.unwrap_or(0) + 1, new_attempt_id()?, 0),
                observed: Stamp::now(),
                entries: Vec::new(),
                last_upload: None,
                longest_pause: std::time::Duration::ZERO,
            }),
            None => None,
        };
        if versioned.is_none() && (opts.keys.is_some() || opts.compression != Compression::None) {
            // Never a plain import where an encrypted one was asked for.
            return Err(Error::new(
                codes::UNSUPPORTED,
                format!(
                    "{place} is (or would be) in the sqlite-s3vfs layout: encryption and \
                     compression need the versioned layout"
                ),
            ));
        }
        if versioned.is_none() && matches!(found, Found::Compat) {
            if !opts.overwrite {
                return Err(Error::new(
                    codes::DATABASE_EXISTS,
                    format!("{place} already holds a database; pass {{ overwrite: true }} to replace it"),
                ));
            }
            existing = list_blocks(&*store, &keys)
                .await?
                .into_iter()
                .map(|o| o.key)
                .collect();
            spool = Some(tempfile()?);
        }
        let layout = match versioned {
            Some(_) => LayoutKind::Versioned,
            None => LayoutKind::Compat,
        };
        Ok(Deserializer {
            block_size: opts.block_size.unwrap_or(layout.default_block_size()),
            store,
            keys,
            opts,
            place,
            pending: Vec::new(),
            total: 0,
            next_block: 0,
            block0: None,
            header: Vec::new(),
            uploads: FuturesUnordered::new(),
            uploaded_up_to: 0,
            existing,
            spool,
            failed: false,
            root_sent: false,
            block0_sent: false,
            versioned,
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
        let key = match self.versioned.as_mut() {
            Some(v) => {
                v.note_upload();
                let (stored, p) = v.codec.seal_block(&mut v.uploads, i, &data)?;
                data = stored;
                v.entries.resize(i as usize + 1, Pointer::default());
                v.entries[i as usize] = p;
                v.names.block(i, &p)
            }
            None => self.keys.key(i),
        };
        self.uploaded_up_to = i + 1;
        // The versioned layout's keys are new; the other layout's are the database's own.
        let mode = if self.versioned.is_some() {
            PutMode::Overwrite
        } else {
            PutMode::Rewrite
        };
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
        if self.versioned.is_some() {
            self.publish_version().await?;
            return Ok(self.total);
        }
        // Objects past the new end (overwrite), and any journal left by an earlier database: a
        // stale journal would be rolled back into the new one.
        let keep = self.next_block;
        let mut doomed = Vec::new();
        for k in &self.existing {
            if self.keys.parse(k).is_some_and(|i| i >= keep) {
                doomed.push(k.clone());
            }
        }
        let journal = BlockKeys::new(journal_prefix(&self.opts.prefix));
        for o in list_blocks(&*self.store, &journal).await? {
            doomed.push(o.key);
        }
        delete_keys(self.store.clone(), doomed, self.opts.concurrency).await?;
        if let Some(block0) = self.block0.take() {
            let key0 = self.keys.key(0);
            self.block0_sent = true;
            if let Err(e) = self
                .store
                .put(&key0, block0.clone(), PutMode::Rewrite)
                .await
            {
                // The PUT may have landed with its answer lost: the store decides, not a guess.
                // Not there (yet) is no proof it will not land: the blocks stay either way.
                if let Ok(GetOutcome::Found(obj)) =
                    self.store.get(&key0, GetOptions::default()).await
                {
                    if obj.body == block0 {
                        return Ok(self.total);
                    }
                }
                return Err(e.context(format!(
                    "{}: block 0 of the import may still land, so its other blocks were kept; \
                     run the import again with {{ overwrite: true }}",
                    self.place
                )));
            }
        }
        Ok(self.total)
    }

    /// Versioned layout: the map and the root of the imported version; the root's create is
    /// the moment the import becomes visible.
    async fn publish_version(&mut self) -> Result<()> {
        self.check_blocks_survived_pauses().await?;
        let v = self.versioned.as_mut().expect("versioned import");
        let block0 = self.block0.take().unwrap_or_default();
        let count = self.total.div_ceil(self.block_size) as usize;
        let mut entries = std::mem::take(&mut v.entries);
        entries.resize(count, Pointer::default());
        let layout = Layout {
            page_size: sqlite_header::page_size(&self.header).unwrap_or(0),
            block_size: self.block_size,
            file_size: self.total,
            codec: v.codec.clone(),
            // A fresh map: it carries codecs only if this import compresses or encrypts.
            codecs: v.codec.compression != Compression::None || v.codec.keys.is_some(),
        };
        let (map, segments) = fresh_map(
            &v.names,
            &entries,
            &mut v.uploads,
            layout.segment_len(),
            layout.codecs,
            &layout.codec,
        )?;
        v.entries = entries;
        let mut prepared = Prepared::new(
            &v.names,
            &v.uploads,
            layout,
            map,
            block0,
            segments,
            Vec::new(),
        )?;
        let version = v.uploads.version;
        crate::layout::versioned::commit::upload(
            self.store.clone(),
            &mut prepared,
            self.opts.concurrency,
        )
        .await?;
        let mut observed = Some(v.observed);
        let names = v.names.clone();
        let published = publish_root(
            self.store.clone(),
            &names,
            &mut prepared,
            &mut observed,
            self.opts.concurrency,
        )
        .await;
        // A loss is definite (a rival's root is there): our objects may then go.
        self.root_sent = prepared.sent && !matches!(published, Ok(Outcome::Lost));
        match published? {
            Outcome::Committed => Ok(()),
            Outcome::Lost => Err(Error::new(
                "SQLITE_BUSY",
                format!(
                    "{}: another writer committed version {version} while this import ran; \
                     nothing was replaced",
                    self.place
                ),
            )),
        }
    }

    /// After a pause long enough that GC may have taken this import's early blocks for an
    /// abandoned attempt's: every block must still be there before a root names it.
    async fn check_blocks_survived_pauses(&mut self) -> Result<()> {
        let Some(v) = self.versioned.as_mut() else {
            return Ok(());
        };
        v.note_upload();
        if v.longest_pause <= MAX_BASE_AGE {
            return Ok(());
        }
        let keys = v.block_keys();
        let store = self.store.clone();
        let missing = futures::stream::iter(keys.into_iter().map(|key| {
            let store = store.clone();
            async move { store.head(&key).await.map(|m| m.is_none().then_some(key)) }
        }))
        .buffer_unordered(self.opts.concurrency.max(1))
        .filter_map(|r| async move { r.transpose() })
        .collect::<Vec<Result<String>>>()
        .await
        .into_iter()
        .collect::<Result<Vec<String>>>()?;
        if let Some(key) = missing.first() {
            return Err(Error::new(
                codes::VERSION_GONE,
                format!(
                    "{}: the import paused for {} s, and {} of its blocks (e.g. {key}) were \
                     garbage-collected meanwhile; nothing was published: run the import again",
                    self.place,
                    v.longest_pause.as_secs(),
                    missing.len()
                ),
            ));
        }
        Ok(())
    }

    /// Deletes what this import uploaded (never the blocks of a database that was there before:
    /// those are only touched after validation).
    pub async fn abort(&mut self) {
        self.failed = true;
        while let Some(done) = self.uploads.next().await {
            let _ = done;
        }
        if self.root_sent || self.block0_sent {
            // A root that may have landed references these blocks: deleting them could leave
            // the head naming missing objects. GC collects them if the root did not land.
            return;
        }
        if let Some(v) = self.versioned.as_ref() {
            // Our own attempt's keys only: nothing else is ever touched.
            let _ = delete_keys(self.store.clone(), v.block_keys(), self.opts.concurrency).await;
            return;
        }
        if !self.existing.is_empty() {
            // Replacing a database: bad input was refused before anything was uploaded; a store
            // failure mid-upload leaves what it leaves (this layout has no atomic commit).
            return;
        }
        let keys: Vec<String> = (1..self.uploaded_up_to).map(|i| self.keys.key(i)).collect();
        let _ = delete_keys(self.store.clone(), keys, self.opts.concurrency).await;
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
        let v = d.versioned.as_mut().unwrap();
        v.last_upload = Some(Stamp::now().earlier(MAX_BASE_AGE * 2));
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
