//! Detects sequential block reads and says which blocks to prefetch next.
//!
//! A stream must advance block by block three times before anything is prefetched (a B-tree
//! descent touches unrelated blocks, and two of them may happen to be neighbours); then the
//! window doubles at each step up to the cap, like a read head. Any jump resets it. Block 0 is
//! ignored: SQLite rereads the header at every transaction, in the middle of a scan.

pub struct ReadAhead {
    max_window: u64,
    window: u64,
    last: Option<u64>,
    steps: u32,
}

/// Consecutive one-block advances before the first prefetch.
const STEPS_BEFORE_PREFETCH: u32 = 2;

impl ReadAhead {
    pub fn new(max_window: u64) -> Self {
        ReadAhead {
            max_window,
            window: 0,
            last: None,
            steps: 0,
        }
    }

    /// Records a read of blocks `first..=last`; returns the blocks to have in flight ahead of it.
    pub fn observe(&mut self, first: u64, last: u64) -> Option<(u64, u64)> {
        if self.max_window == 0 || last == 0 {
            return None;
        }
        let first = first.max(1);
        match self.last {
            // Still inside the block read last: nothing new to learn.
            Some(prev) if first == prev && last == prev => {}
            Some(prev) if first == prev + 1 || (first <= prev && last > prev) => {
                self.steps += 1;
                if self.steps >= STEPS_BEFORE_PREFETCH {
                    // At least 2, at most the cap (which may be 1: `clamp` would panic).
                    self.window = (self.window * 2).max(2).min(self.max_window);
                }
            }
            _ => {
                self.steps = 0;
                self.window = 0;
            }
        }
        self.last = Some(last);
        (self.window > 0).then(|| (last + 1, last + self.window))
    }

    /// Forgets the stream (the file changed under it).
    pub fn reset(&mut self) {
        self.window = 0;
        self.last = None;
        self.steps = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_of_one_block_prefetches_one() {
        // The cap follows the cache (half of it): a small cache and large blocks give 1.
        let mut ra = ReadAhead::new(1);
        for i in 1..3 {
            ra.observe(i, i);
        }
        assert_eq!(ra.observe(3, 3), Some((4, 4)));
        assert_eq!(ra.observe(4, 4), Some((5, 5)));
    }

    #[test]
    fn a_sequential_stream_grows_its_window_up_to_the_cap() {
        let mut ra = ReadAhead::new(8);
        assert_eq!(ra.observe(1, 1), None);
        assert_eq!(ra.observe(2, 2), None);
        assert_eq!(ra.observe(2, 2), None);
        assert_eq!(ra.observe(3, 3), Some((4, 5)));
        assert_eq!(ra.observe(4, 4), Some((5, 8)));
        assert_eq!(ra.observe(5, 5), Some((6, 13)));
        assert_eq!(ra.observe(0, 0), None);
        assert_eq!(ra.observe(6, 6), Some((7, 14)));
    }

    #[test]
    fn random_reads_and_neighbouring_pairs_prefetch_nothing() {
        let mut ra = ReadAhead::new(64);
        for (a, b) in [
            (7, 7),
            (8, 8),
            (3, 3),
            (90, 90),
            (12, 12),
            (13, 13),
            (500, 500),
        ] {
            assert_eq!(ra.observe(a, b), None);
        }
    }

    #[test]
    fn a_jump_resets_the_window_and_zero_disables_it() {
        let mut ra = ReadAhead::new(64);
        for i in 1..=5 {
            ra.observe(i, i);
        }
        assert_eq!(ra.observe(40, 40), None);
        assert_eq!(ra.observe(41, 41), None);
        let mut off = ReadAhead::new(0);
        for i in 1..=10 {
            assert_eq!(off.observe(i, i), None);
        }
    }
}
