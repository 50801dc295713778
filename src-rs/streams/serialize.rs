//! Streams a database's bytes out of the store: the size from the header in block 0 (a LIST only
//! when the header cannot tell), then the blocks in order, up to `concurrency` GETs ahead of the
//! consumer. Memory stays bounded by that window, whatever the database's size. In the versioned
//! layout it exports exactly the version pinned when it started, whatever commits meanwhile.

use crate::connection::StoreHandle;
use crate::error::{codes, Error, Result};
use crate::layout::block_map::{BlockMap, BlockReader, Location};
use crate::layout::versioned::map::VersionedMap;
use crate::layout::versioned::Names;
use crate::layout::{compat, LayoutKind};
use crate::store::{DynStore, GetOptions, GetOutcome};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::task::JoinHandle;

pub const ERR_CHANGED: &str = "ERR_CHANGED_DURING_SERIALIZE";

pub struct Serializer {
    handle: StoreHandle,
    /// Where each block is, and how its object is read (the layout's), once started.
    map: Option<(Box<dyn BlockMap>, Arc<dyn BlockReader>)>,
    /// Blocks in the file, once known.
    blocks: Option<u64>,
    size: u64,
    next_fetch: u64,
    first: Option<Bytes>,
    in_flight: VecDeque<JoinHandle<Result<Bytes>>>,
}

impl Serializer {
    pub fn new(handle: StoreHandle) -> Self {
        Serializer {
            handle,
            map: None,
            blocks: None,
            size: 0,
            next_fetch: 0,
            first: None,
            in_flight: VecDeque::new(),
        }
    }

    async fn start(&mut self) -> Result<()> {
        let h = &self.handle;
        let store = &*h.store;
        let (map, size, first): (Box<dyn BlockMap>, _, _) = match h.layout {
            LayoutKind::Versioned => {
                let names = Names::with_keys(h.prefix.clone(), h.keys.clone());
                let (map, size, block_size, first) =
                    VersionedMap::export_start(store, names, h.snapshot.clone(), h.block_size)
                        .await?;
                self.handle.block_size = block_size;
                (Box::new(map), size, first)
            }
            LayoutKind::Compat => {
                let (map, size, first) =
                    compat::export_start(store, &h.prefix, h.block_size).await?;
                (Box::new(map), size, first)
            }
        };
        let reader = map.reader();
        self.map = Some((map, reader));
        self.size = size;
        self.first = first;
        self.blocks = Some(size.div_ceil(self.handle.block_size));
        self.next_fetch = 1;
        Ok(())
    }

    fn fill(&mut self) -> Result<()> {
        let blocks = self.blocks.unwrap_or(0);
        let Some((map, reader)) = &self.map else {
            return Ok(());
        };
        while self.in_flight.len() < self.handle.concurrency && self.next_fetch < blocks {
            let i = self.next_fetch;
            let bs = self.handle.block_size;
            let expected = (self.size - i * bs).min(bs) as usize;
            let (key, pointer) = match map.locate(i)? {
                Location::Object(key, pointer) => (key, pointer),
                held => {
                    let block = match held {
                        // Never written (the lock-byte page's block): zeros, like SQLite's file.
                        Location::Zeros => Bytes::from(vec![0; expected]),
                        Location::Inline(b) if b.len() >= expected => b.slice(..expected),
                        _ => {
                            return Err(Error::internal(format!(
                                "block {i} is held by the layout, and shorter than the file"
                            )))
                        }
                    };
                    self.in_flight
                        .push_back(crate::runtime::spawn(async move { Ok(block) }));
                    self.next_fetch += 1;
                    continue;
                }
            };
            let store: DynStore = self.handle.store.clone();
            let reader = reader.clone();
            let in_place = map.in_place();
            self.in_flight.push_back(crate::runtime::spawn(async move {
                let block = match store.get(&key, GetOptions::default()).await? {
                    GetOutcome::Found(obj) => {
                        reader.decode(&key, i, pointer.as_ref(), obj.body, bs)?
                    }
                    _ => reader.missing(&key)?,
                };
                if block.len() >= expected {
                    return Ok(block.slice(..expected));
                }
                Err(if in_place {
                    // Rewritten in place by a commit that runs meanwhile.
                    Error::new(
                        ERR_CHANGED,
                        format!(
                            "{key} is missing or shorter than expected: the database changed \
                             while it was being serialized"
                        ),
                    )
                } else {
                    Error::new(
                        codes::CORRUPT_OBJECT,
                        format!(
                            "{key}: {} bytes, where the file needs {expected}",
                            block.len()
                        ),
                    )
                })
            }));
            self.next_fetch += 1;
        }
        Ok(())
    }

    /// The next chunk of the file (one block), or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        if self.blocks.is_none() {
            self.start().await?;
            self.fill()?;
            if let Some(first) = self.first.take() {
                return Ok(Some(first));
            }
        }
        self.fill()?;
        let Some(task) = self.in_flight.pop_front() else {
            return Ok(None);
        };
        let block = task
            .await
            .map_err(|e| Error::internal(format!("serialize task failed: {e}")))??;
        self.fill()?;
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
