//! Ages that keep counting while the machine sleeps. `Instant` is `CLOCK_MONOTONIC` on Linux
//! (`CLOCK_UPTIME_RAW` on macOS), which stops during suspend or a VM pause; the commit protocol's
//! ages (how long ago a base was seen current, how old an upload is) must not look young after
//! one, or a writer could publish over objects GC removed meanwhile. A `Stamp` is the larger of
//! the monotonic and the wall-clock age: a suspend shows on the wall clock, a wall clock set
//! backwards cannot make an age shrink below the monotonic one, and one set forwards only makes
//! ages look older (the safe side: observe again, upload again).

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    mono: Instant,
    wall: SystemTime,
}

impl Stamp {
    pub fn now() -> Stamp {
        Stamp {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        let wall = self.wall.elapsed().unwrap_or(Duration::ZERO);
        self.mono.elapsed().max(wall)
    }

    /// The same moment, `by` earlier on both clocks (tests).
    #[cfg(test)]
    pub fn earlier(self, by: Duration) -> Stamp {
        Stamp {
            mono: self.mono.checked_sub(by).unwrap_or(self.mono),
            wall: self.wall - by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_counts_the_wall_clock_when_the_monotonic_one_stood_still() {
        // A suspend: the monotonic clock saw nothing, the wall clock an hour.
        let stamp = Stamp {
            mono: Instant::now(),
            wall: SystemTime::now() - Duration::from_secs(3600),
        };
        assert!(stamp.elapsed() >= Duration::from_secs(3600));
        // A wall clock set back an hour: the monotonic age still counts.
        let stamp = Stamp {
            mono: Instant::now() - Duration::from_millis(50),
            wall: SystemTime::now() + Duration::from_secs(3600),
        };
        assert!(stamp.elapsed() >= Duration::from_millis(50));
    }
}
