//! A bytes-bounded LRU of blocks, keyed by object key (immutable in the versioned layout; the
//! `sqlite-s3vfs` layout clears it when another process changes the file).

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};

pub struct BlockCache {
    capacity: usize,
    used: usize,
    tick: u64,
    entries: HashMap<String, (Bytes, u64)>,
    by_age: BTreeMap<u64, String>,
}

impl BlockCache {
    pub fn new(capacity_bytes: usize) -> Self {
        BlockCache {
            capacity: capacity_bytes,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<Bytes> {
        let (data, age) = self.entries.get_mut(key)?;
        let owned = self.by_age.remove(age)?;
        self.tick += 1;
        *age = self.tick;
        self.by_age.insert(self.tick, owned);
        Some(data.clone())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn insert(&mut self, key: String, data: Bytes) {
        self.remove(&key);
        if data.len() > self.capacity {
            return;
        }
        self.tick += 1;
        self.used += data.len();
        self.entries.insert(key.clone(), (data, self.tick));
        self.by_age.insert(self.tick, key);
        while self.used > self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            if let Some((data, _)) = self.entries.remove(&oldest) {
                self.used -= data.len();
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        if let Some((data, age)) = self.entries.remove(key) {
            self.used -= data.len();
            self.by_age.remove(&age);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_age.clear();
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_past_capacity() {
        let mut cache = BlockCache::new(10);
        cache.insert("1".into(), Bytes::from(vec![1; 4]));
        cache.insert("2".into(), Bytes::from(vec![2; 4]));
        assert!(cache.get("1").is_some());
        cache.insert("3".into(), Bytes::from(vec![3; 4]));
        assert!(cache.contains("1"));
        assert!(!cache.contains("2"));
        assert!(cache.contains("3"));
    }

    #[test]
    fn never_holds_a_block_larger_than_capacity() {
        let mut cache = BlockCache::new(3);
        cache.insert("1".into(), Bytes::from(vec![1; 4]));
        assert!(!cache.contains("1"));
    }
}
