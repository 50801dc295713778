//! The write buffer of a block file: every block changed since the last flush or publish, held
//! in memory, in the file's temp file, or (versioned layout) already uploaded under the commit
//! attempt's key. The bytes held in memory are counted against the database's `MemoryBudget`.

use super::budget::MemoryBudget;
use crate::layout::versioned::format::Pointer;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Dirty {
    /// In memory; `written` orders blocks by their last write (the oldest leave memory first).
    Mem { data: Vec<u8>, written: u64 },
    /// In the file's temp file, at `index * block_size`: `len` bytes.
    Spilled { len: usize },
    /// Uploaded early under this commit attempt's key (versioned layout; `len` bytes).
    Uploaded {
        key: String,
        pointer: Pointer,
        len: usize,
    },
}

impl Dirty {
    /// The block's length in the buffer.
    pub fn byte_len(&self) -> usize {
        match self {
            Dirty::Mem { data, .. } => data.len(),
            Dirty::Spilled { len } | Dirty::Uploaded { len, .. } => *len,
        }
    }

    fn mem_len(&self) -> usize {
        match self {
            Dirty::Mem { data, .. } => data.len(),
            _ => 0,
        }
    }
}

pub struct DirtyBlocks {
    map: BTreeMap<u64, Dirty>,
    mem_bytes: usize,
    clock: u64,
    budget: Arc<MemoryBudget>,
}

impl DirtyBlocks {
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        DirtyBlocks {
            map: BTreeMap::new(),
            mem_bytes: 0,
            clock: 0,
            budget,
        }
    }

    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains(&self, i: u64) -> bool {
        self.map.contains_key(&i)
    }

    pub fn get(&self, i: u64) -> Option<&Dirty> {
        self.map.get(&i)
    }

    /// Block `i`'s content, when it is held in memory.
    pub fn mem(&self, i: u64) -> Option<&[u8]> {
        match self.map.get(&i) {
            Some(Dirty::Mem { data, .. }) => Some(data),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Dirty)> {
        self.map.iter().map(|(i, d)| (*i, d))
    }

    /// Whether any block lives outside memory.
    pub fn any_parked(&self) -> bool {
        self.map.values().any(|d| !matches!(d, Dirty::Mem { .. }))
    }

    fn account(&mut self, before: usize, after: usize) {
        self.mem_bytes = self.mem_bytes + after - before;
        self.budget.adjust(before, after);
    }

    /// Puts block `i` in memory with `data` (its last write is now).
    pub fn put_mem(&mut self, i: u64, data: Vec<u8>) {
        self.clock += 1;
        self.set(
            i,
            Dirty::Mem {
                data,
                written: self.clock,
            },
        );
    }

    /// Replaces block `i`'s entry.
    pub fn set(&mut self, i: u64, d: Dirty) {
        let after = d.mem_len();
        let before = self.map.insert(i, d).map_or(0, |old| old.mem_len());
        self.account(before, after);
    }

    /// Takes block `i` out of the buffer if it is held in memory.
    pub fn take_mem(&mut self, i: u64) -> Option<Vec<u8>> {
        match self.map.get(&i) {
            Some(Dirty::Mem { .. }) => match self.remove(i) {
                Some(Dirty::Mem { data, .. }) => Some(data),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn remove(&mut self, i: u64) -> Option<Dirty> {
        let old = self.map.remove(&i)?;
        self.account(old.mem_len(), 0);
        Some(old)
    }

    /// Cuts block `i` (held in memory) to `len` bytes.
    pub fn truncate_mem(&mut self, i: u64, len: usize) {
        if let Some(Dirty::Mem { data, .. }) = self.map.get_mut(&i) {
            let before = data.len();
            data.truncate(len);
            let after = data.len();
            self.account(before, after);
        }
    }

    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let doomed: Vec<u64> = self.map.keys().copied().filter(|i| !keep(*i)).collect();
        for i in doomed {
            self.remove(i);
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        let before = std::mem::take(&mut self.mem_bytes);
        self.budget.adjust(before, 0);
    }

    /// The blocks held in memory that `movable` allows, least recently written first.
    pub fn oldest_in_memory(&self, movable: impl Fn(u64, usize) -> bool) -> Vec<u64> {
        let mut found: Vec<(u64, u64)> = self
            .map
            .iter()
            .filter_map(|(i, d)| match d {
                Dirty::Mem { data, written } if movable(*i, data.len()) => Some((*written, *i)),
                _ => None,
            })
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, i)| i).collect()
    }

    /// A copy of the entries, to go back to with `restore`.
    pub fn save(&self) -> BTreeMap<u64, Dirty> {
        self.map.clone()
    }

    pub fn restore(&mut self, map: BTreeMap<u64, Dirty>) {
        let after: usize = map.values().map(Dirty::mem_len).sum();
        let before = std::mem::replace(&mut self.mem_bytes, after);
        self.budget.adjust(before, after);
        self.map = map;
    }
}

impl Drop for DirtyBlocks {
    fn drop(&mut self) {
        self.budget.adjust(self.mem_bytes, 0);
    }
}
