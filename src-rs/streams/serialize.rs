//! Streams a database's bytes out of the store: the size from the header in block 0 (a LIST only
//! when the header cannot tell), then the blocks in order, up to `concurrency` GETs ahead of the
//! consumer. Memory stays bounded by that window, whatever the database's size. In the versioned
//! layout it exports exactly the version pinned when it started, whatever commits meanwhile.

use crate::connection::StoreHandle;
use crate::error::{codes, Error, Result};
use crate::layout::compat::{check_block_size, database_size, BlockKeys};
use crate::layout::versioned::codec::BlockCodec;
use crate::layout::versioned::format::Pointer;
use crate::layout::versioned::{version_gone, Names, SegmentCache};
use crate::store::{DynStore, GetOptions, GetOutcome};
use bytes::Bytes;
use std::collections::VecDeque;
use tokio::task::JoinHandle;

pub const ERR_CHANGED: &str = "ERR_CHANGED_DURING_SERIALIZE";

pub struct Serializer {
    handle: StoreHandle,
    /// Opens the versioned layout's blocks (checks, unseals, decompresses).
    codec: BlockCodec,
    keys: BlockKeys,
    /// Blocks in the file, once known.
    blocks: Option<u64>,
    size: u64,
    next_fetch: u64,
    first: Option<Bytes>,
    in_flight: VecDeque<JoinHandle<Result<Bytes>>>,
    /// Versioned layout: the pinned version's block map.
    entries: Option<(Names, u64, Vec<Pointer>)>,
}

impl Serializer {
    pub fn new(handle: StoreHandle) -> Self {
        let keys = BlockKeys::new(handle.prefix.clone());
        let handle_keys = handle.keys.clone();
        Serializer {
            handle,
            keys,
            blocks: None,
            size: 0,
            next_fetch: 0,
            first: None,
            in_flight: VecDeque::new(),
            entries: None,
            codec: BlockCodec {
                keys: handle_keys,
                ..Default::default()
            },
        }
    }

    async fn start(&mut self) -> Result<()> {
        let store = &self.handle.store;
        if let Some(snapshot) = self.handle.snapshot.clone() {
            let names = Names::with_keys(self.handle.prefix.clone(), self.handle.keys.clone());
            if let Some(snap) = snapshot {
                let count = snap.block_count();
                let mut segments = SegmentCache::default();
                let entries = snap.entries(&**store, &names, &mut segments, count).await?;
                self.size = snap.root.file_size;
                let len = (self.size.min(snap.root.block_size)) as usize;
                self.first = Some(snap.root.block0.slice(..len.min(snap.root.block0.len())));
                self.handle.block_size = snap.root.block_size;
                self.codec.db = snap.root.db_id;
                self.entries = Some((names, snap.version(), entries));
            }
            self.blocks = Some(self.size.div_ceil(self.handle.block_size));
            self.next_fetch = 1;
            return Ok(());
        }
        let size = match store.get(&self.keys.key(0), GetOptions::default()).await? {
            GetOutcome::Found(obj) => {
                let size = database_size(&**store, &self.keys, &obj.body).await?;
                check_block_size(
                    &format!("{}/{}", store.location(), self.handle.prefix),
                    self.handle.block_size,
                    &obj.body,
                    size,
                    // A commit may be in flight: only what no commit explains (a shorter object
                    // where more is needed fails later as ERR_CHANGED_DURING_SERIALIZE).
                    false,
                )?;
                let len = (size.min(self.handle.block_size)) as usize;
                self.first = Some(obj.body.slice(..len.min(obj.body.len())));
                size
            }
            _ => 0,
        };
        self.size = size;
        let blocks = size.div_ceil(self.handle.block_size);
        self.blocks = Some(blocks);
        self.next_fetch = 1;
        Ok(())
    }

    fn fill(&mut self) {
        let blocks = self.blocks.unwrap_or(0);
        while self.in_flight.len() < self.handle.concurrency && self.next_fetch < blocks {
            let i = self.next_fetch;
            let bs = self.handle.block_size;
            let expected = (self.size - i * bs).min(bs) as usize;
            let store: DynStore = self.handle.store.clone();
            if let Some((names, version, entries)) = &self.entries {
                let p = entries.get(i as usize).copied().unwrap_or_default();
                let key = names.block(i, &p);
                let version = *version;
                let codec = self.codec.clone();
                self.in_flight.push_back(crate::runtime::spawn(async move {
                    if p.is_null() {
                        // Never written (the lock-byte page's block): zeros, like SQLite's file.
                        return Ok(Bytes::from(vec![0; expected]));
                    }
                    let stored = match store.get(&key, GetOptions::default()).await? {
                        GetOutcome::Found(obj) => obj.body,
                        _ => return Err(version_gone(&key, version)),
                    };
                    let block = codec.open_block(&key, i, &p, stored, bs)?;
                    if block.len() < expected {
                        return Err(Error::new(
                            codes::CORRUPT_OBJECT,
                            format!(
                                "{key}: {} bytes, where the file needs {expected}",
                                block.len()
                            ),
                        ));
                    }
                    Ok(block.slice(..expected))
                }));
                self.next_fetch += 1;
                continue;
            }
            let key = self.keys.key(i);
            self.in_flight.push_back(crate::runtime::spawn(async move {
                match store.get(&key, GetOptions::default()).await? {
                    GetOutcome::Found(obj) if obj.body.len() >= expected => {
                        Ok(obj.body.slice(..expected))
                    }
                    _ => Err(Error::new(
                        ERR_CHANGED,
                        format!("{key} is missing or shorter than expected: the database changed while it was being serialized"),
                    )),
                }
            }));
            self.next_fetch += 1;
        }
    }

    /// The next chunk of the file (one block), or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        if self.blocks.is_none() {
            self.start().await?;
            self.fill();
            if let Some(first) = self.first.take() {
                return Ok(Some(first));
            }
        }
        self.fill();
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let block = task
            .await
            .map_err(|e| Error::internal(format!("serialize task failed: {e}")))??;
        self.fill();
        Ok(Some(block))
    }
}

impl Drop for Serializer {
    fn drop(&mut self) {
        for task in &self.in_flight {
            task.abort();
        }
    }
}
