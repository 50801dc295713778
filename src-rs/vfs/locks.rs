//! SQLite's lock levels between connections of this process to the same database, as try-locks
//! (a conflict is `SQLITE_BUSY` at once; SQLite's busy handler decides whether to wait). Across
//! processes the `sqlite-s3vfs` layout has no locks, like the Python library.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockLevel {
    None = 0,
    Shared = 1,
    Reserved = 2,
    Pending = 3,
    Exclusive = 4,
}

impl LockLevel {
    pub fn from_sqlite(level: i32) -> Option<LockLevel> {
        Some(match level {
            0 => LockLevel::None,
            1 => LockLevel::Shared,
            2 => LockLevel::Reserved,
            3 => LockLevel::Pending,
            4 => LockLevel::Exclusive,
            _ => return None,
        })
    }
}

#[derive(Default)]
struct Entry {
    shared: u32,
    reserved: bool,
    pending: bool,
    exclusive: bool,
}

static TABLE: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);

/// One connection's locks on one database (`key` names bucket and prefix).
pub struct Locks {
    key: String,
    level: LockLevel,
    holds_reserved: bool,
    holds_pending: bool,
    /// Readers read immutable snapshots (versioned layout): only writers exclude each other, so
    /// PENDING and EXCLUSIVE neither wait for readers nor keep new ones out.
    snapshots: bool,
}

pub struct Busy;

impl Locks {
    pub fn new(key: String) -> Self {
        Locks {
            key,
            level: LockLevel::None,
            holds_reserved: false,
            holds_pending: false,
            snapshots: false,
        }
    }

    /// Locks for a database whose readers read snapshots.
    pub fn for_snapshots(key: String) -> Self {
        let mut locks = Locks::new(key);
        locks.snapshots = true;
        locks
    }

    pub fn level(&self) -> LockLevel {
        self.level
    }

    fn with<R>(&self, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut guard = TABLE.lock().unwrap_or_else(|p| p.into_inner());
        let table = guard.get_or_insert_with(HashMap::new);
        let entry = table.entry(self.key.clone()).or_default();
        let out = f(entry);
        if entry.shared == 0 && !entry.reserved && !entry.pending && !entry.exclusive {
            table.remove(&self.key);
        }
        out
    }

    pub fn lock(&mut self, want: LockLevel) -> Result<(), Busy> {
        if want <= self.level {
            return Ok(());
        }
        let (mut level, mut holds_reserved, mut holds_pending) =
            (self.level, self.holds_reserved, self.holds_pending);
        let snapshots = self.snapshots;
        let result = self.with(|e| {
            if snapshots && want >= LockLevel::Reserved {
                if level == LockLevel::None {
                    e.shared += 1;
                }
                if !holds_reserved {
                    if e.reserved {
                        return Err(Busy);
                    }
                    e.reserved = true;
                    holds_reserved = true;
                }
                level = want;
                return Ok(());
            }
            if level == LockLevel::None {
                if e.pending || e.exclusive {
                    return Err(Busy);
                }
                e.shared += 1;
                level = LockLevel::Shared;
            }
            if want >= LockLevel::Reserved && want < LockLevel::Pending && !holds_reserved {
                if e.reserved {
                    return Err(Busy);
                }
                e.reserved = true;
                holds_reserved = true;
                level = LockLevel::Reserved;
            }
            if want >= LockLevel::Pending {
                if !holds_pending {
                    if e.pending || (e.reserved && !holds_reserved) {
                        return Err(Busy);
                    }
                    e.pending = true;
                    holds_pending = true;
                    level = LockLevel::Pending;
                }
                if want == LockLevel::Exclusive {
                    if e.shared > 1 {
                        return Err(Busy);
                    }
                    e.exclusive = true;
                    level = LockLevel::Exclusive;
                }
            }
            Ok(())
        });
        // Keep what was acquired before a conflict (SQLite's own VFSes do the same with PENDING).
        self.level = level;
        self.holds_reserved = holds_reserved;
        self.holds_pending = holds_pending;
        result
    }

    pub fn unlock(&mut self, to: LockLevel) {
        if to >= self.level {
            return;
        }
        let (level, holds_reserved, holds_pending) =
            (self.level, self.holds_reserved, self.holds_pending);
        let snapshots = self.snapshots;
        self.with(|e| {
            if level == LockLevel::Exclusive && !snapshots {
                e.exclusive = false;
            }
            if holds_pending {
                e.pending = false;
            }
            if holds_reserved {
                e.reserved = false;
            }
            if to == LockLevel::None && level >= LockLevel::Shared {
                e.shared = e.shared.saturating_sub(1);
            }
        });
        self.holds_pending = false;
        self.holds_reserved = false;
        self.level = to;
    }

    /// Whether any connection of this process holds RESERVED or more.
    pub fn reserved_by_anyone(&self) -> bool {
        self.with(|e| e.reserved || e.pending || e.exclusive)
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        self.unlock(LockLevel::None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_many_readers_and_exclusive_waits_for_readers() {
        let mut a = Locks::new("t1".into());
        let mut b = Locks::new("t1".into());
        assert!(a.lock(LockLevel::Shared).is_ok());
        assert!(b.lock(LockLevel::Shared).is_ok());
        assert!(a.lock(LockLevel::Reserved).is_ok());
        assert!(b.lock(LockLevel::Reserved).is_err());
        assert!(a.lock(LockLevel::Exclusive).is_err(), "b still reads");
        assert_eq!(a.level(), LockLevel::Pending);
        b.unlock(LockLevel::None);
        assert!(
            b.lock(LockLevel::Shared).is_err(),
            "pending keeps new readers out"
        );
        assert!(a.lock(LockLevel::Exclusive).is_ok());
        a.unlock(LockLevel::Shared);
        assert!(b.lock(LockLevel::Shared).is_ok());
        assert!(!a.reserved_by_anyone());
    }
}
