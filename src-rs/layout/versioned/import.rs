//! The versioned layout's half of an import: every block goes to a key of this attempt, and
//! nothing is visible until the root of the next version is created, so an existing database is
//! never touched by a failed or refused import.

use super::codec::{BlockCodec, Compression};
use super::commit::{fresh_map, publish_root, Layout, Outcome, Prepared, MAX_BASE_AGE};
use super::format::{is_sealed_root, Pointer, Uploads, SEALED_FLAG_PREFIX_LEN};
use super::seal::{new_database_id, Keyring};
use super::{new_attempt_id, Names};
use crate::clock::Stamp;
use crate::error::{codes, Error, Result};
use crate::layout::import::{Import, ImportEnd};
use crate::store::{delete_keys, DynStore, GetOptions, GetOutcome, ObjectStore, PutMode};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use std::sync::Arc;

pub struct VersionedImport {
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
    /// The root create was sent: it may have landed, so nothing of this import is deleted.
    root_sent: bool,
    place: String,
}

impl VersionedImport {
    /// An import into `prefix`, whose newest version is `head` (`None`: no version yet).
    pub async fn start(
        store: &dyn ObjectStore,
        prefix: &str,
        head: Option<u64>,
        overwrite: bool,
        compression: Compression,
        keys: Option<Arc<Keyring>>,
        place: &str,
    ) -> Result<VersionedImport> {
        if let (Some(head), None, true) = (head, &keys, overwrite) {
            // Never a plain version on top of an encrypted database by mistake (an unset key
            // variable): its header says whether it is sealed.
            let key = Names::new(prefix).root(head);
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
        if head.is_some() && !overwrite {
            return Err(Error::new(
                codes::DATABASE_EXISTS,
                format!(
                    "{place} already holds a database; pass {{ overwrite: true }} to replace it"
                ),
            ));
        }
        Ok(VersionedImport {
            names: Names::with_keys(prefix, keys.clone()),
            codec: BlockCodec {
                compression,
                keys,
                db: new_database_id()?,
            },
            uploads: Uploads::new(head.unwrap_or(0) + 1, new_attempt_id()?, 0),
            observed: Stamp::now(),
            entries: Vec::new(),
            last_upload: None,
            longest_pause: std::time::Duration::ZERO,
            root_sent: false,
            place: place.to_string(),
        })
    }

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

    /// The map and the root of the imported version; the root's create is the moment the
    /// import becomes visible.
    async fn publish(&mut self, store: &DynStore, end: ImportEnd) -> Result<()> {
        self.check_blocks_survived_pauses(store, end.concurrency)
            .await?;
        let block0 = end.block0.unwrap_or_default();
        let mut entries = std::mem::take(&mut self.entries);
        entries.resize(
            end.total.div_ceil(end.block_size) as usize,
            Pointer::default(),
        );
        let layout = Layout {
            page_size: end.page_size,
            block_size: end.block_size,
            file_size: end.total,
            codec: self.codec.clone(),
            // A fresh map: it carries codecs only if this import compresses or encrypts.
            codecs: self.codec.compression != Compression::None || self.codec.keys.is_some(),
        };
        let (map, segments) = fresh_map(
            &self.names,
            &entries,
            &mut self.uploads,
            layout.segment_len(),
            layout.codecs,
            &layout.codec,
        )?;
        self.entries = entries;
        let mut prepared = Prepared::new(
            &self.names,
            &self.uploads,
            layout,
            map,
            block0,
            segments,
            Vec::new(),
        )?;
        let version = self.uploads.version;
        super::commit::upload(store.clone(), &mut prepared, end.concurrency).await?;
        let mut observed = Some(self.observed);
        let published = publish_root(
            store.clone(),
            &self.names,
            &mut prepared,
            &mut observed,
            end.concurrency,
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
    async fn check_blocks_survived_pauses(
        &mut self,
        store: &DynStore,
        concurrency: usize,
    ) -> Result<()> {
        self.note_upload();
        if self.longest_pause <= MAX_BASE_AGE {
            return Ok(());
        }
        let keys = self.block_keys();
        let missing = futures::stream::iter(keys.into_iter().map(|key| {
            let store = store.clone();
            async move { store.head(&key).await.map(|m| m.is_none().then_some(key)) }
        }))
        .buffer_unordered(concurrency.max(1))
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
                    self.longest_pause.as_secs(),
                    missing.len()
                ),
            ));
        }
        Ok(())
    }
}

impl Import for VersionedImport {
    fn block(&mut self, i: u64, data: Bytes) -> Result<(String, Bytes, PutMode)> {
        self.note_upload();
        let (stored, p) = self.codec.seal_block(&mut self.uploads, i, &data)?;
        self.entries.resize(i as usize + 1, Pointer::default());
        self.entries[i as usize] = p;
        // Keys of this attempt are new.
        Ok((self.names.block(i, &p), stored, PutMode::Overwrite))
    }

    fn finish<'a>(&'a mut self, store: &'a DynStore, end: ImportEnd) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.publish(store, end))
    }

    fn abort<'a>(&'a mut self, store: &'a DynStore, concurrency: usize) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.root_sent {
                // A root that may have landed references these blocks: deleting them could
                // leave the head naming missing objects. GC collects them if it did not land.
                return;
            }
            // Our own attempt's keys only: nothing else is ever touched.
            let _ = delete_keys(store.clone(), self.block_keys(), concurrency).await;
        })
    }

    #[cfg(test)]
    fn pretend_paused(&mut self, by: std::time::Duration) {
        self.last_upload = Some(Stamp::now().earlier(by));
    }
}
