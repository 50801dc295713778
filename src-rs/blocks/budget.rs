//! The memory a database's buffered writes may take (`memoryLimit`): the changed blocks of its
//! main file and the rollback journal, across all of its files. Past the limit, a file that
//! writes moves its own buffered bytes out of memory (a temp file, or the store for the
//! versioned layout's blocks), so a transaction of any size runs in bounded memory.

use crate::store::Stats;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Where `db.stats()` reads what is buffered now and its peak.
    stats: Arc<Stats>,
}

impl MemoryBudget {
    pub fn new(limit: usize, stats: Arc<Stats>) -> Self {
        MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
            stats,
        }
    }

    /// A budget that never runs out (tests that buffer on purpose).
    #[cfg(test)]
    pub fn unlimited() -> Self {
        Self::new(usize::MAX, Arc::default())
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn over(&self) -> bool {
        self.used() > self.limit
    }

    /// Records that buffered bytes went from `before` to `after`.
    pub fn adjust(&self, before: usize, after: usize) {
        let now = if after >= before {
            self.used.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            self.used.fetch_sub(before - after, Ordering::Relaxed) - (before - after)
        };
        self.stats.buffered.store(now as u64, Ordering::Relaxed);
        self.stats
            .buffered_peak
            .fetch_max(now as u64, Ordering::Relaxed);
    }
}
