//! The crate's one error type. Every error has a machine-readable `code` (an SQLite extended
//! result code name, an S3 error code, a network error name, or one of ours) and a message that
//! says what and where, never credentials. Beside the code, a `kind` says what the caller may do
//! about it; code that decides (retry, settle, give up) looks at the kind, never at code strings.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: String,
    pub message: String,
    pub kind: ErrorKind,
}

/// What an error means to whoever handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// Sending the same request again may succeed: throttling, server errors, timeouts, dropped
    /// connections, a conditional request that raced another one.
    Transient,
    /// A transient error that asks the client to send fewer requests (503 SlowDown, 429): the
    /// whole client backs off, not only the request.
    Throttled,
    /// Sending it again will fail the same way: bad input, missing bucket, denied access,
    /// corrupt data, SQL errors.
    #[default]
    Permanent,
    /// A condition failed because someone else changed the object first (a lost race): the
    /// caller reads the new state and decides.
    Conflict,
    /// A write may or may not have been applied; the caller must find out before acting on it.
    UnknownOutcome,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Conflict => "conflict",
            ErrorKind::UnknownOutcome => "unknown-outcome",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Codes that are ours (not SQLite's, not S3's).
pub mod codes {
    pub const CLOSED: &str = "ERR_DATABASE_CLOSED";
    pub const STATEMENT_FINALIZED: &str = "ERR_STATEMENT_FINALIZED";
    pub const INVALID_ARGUMENT: &str = "ERR_INVALID_ARGUMENT";
    pub const NOT_A_DATABASE: &str = "ERR_NOT_A_DATABASE";
    pub const DATABASE_EXISTS: &str = "ERR_DATABASE_EXISTS";
    pub const UNSUPPORTED: &str = "ERR_UNSUPPORTED";
    pub const ITERATOR_ORDER: &str = "ERR_ITERATOR_ORDER";
    /// More iterators open at once on one database than `MAX_OPEN_ITERATORS`.
    pub const TOO_MANY_ITERATORS: &str = "ERR_TOO_MANY_ITERATORS";
    pub const INTERNAL: &str = "ERR_INTERNAL";
    /// S3's answer to a failed `If-None-Match` / `If-Match` (both stores use this code).
    pub const PRECONDITION_FAILED: &str = "PreconditionFailed";
    /// An object a version references is missing (GC removed the version).
    pub const VERSION_GONE: &str = "ERR_VERSION_GONE";
    /// A root, map segment or block failed its checksum.
    pub const CORRUPT_OBJECT: &str = "SQLITE_CORRUPT";
    /// A commit's root create may have landed; the connection settles it before its next commit.
    pub const COMMIT_UNKNOWN: &str = "ERR_COMMIT_UNKNOWN";
    /// A commit of unknown outcome whose root can no longer be read back (GC collected its
    /// version): whether it committed cannot be decided any more.
    pub const COMMIT_UNDECIDABLE: &str = "ERR_COMMIT_UNDECIDABLE";
    /// The store does not honour `If-None-Match: *`, so concurrent writers cannot be detected.
    pub const NO_CONDITIONAL_WRITES: &str = "ERR_CONDITIONAL_WRITES_UNSUPPORTED";
    /// A write to a database opened at an older version (time travel).
    pub const READ_ONLY_VERSION: &str = "ERR_READ_ONLY_VERSION";
    /// The local temp file that holds buffered writes past `memoryLimit` failed (disk full, a
    /// temp directory that cannot be written).
    pub const TEMP_FILE: &str = "ERR_TEMP_FILE";
    /// The local directory store (`options.store = { dir }`) could not read or write a file.
    pub const STORE_IO: &str = "ERR_STORE_IO";
    /// Blocks a transaction uploaded early were garbage-collected before its commit (the
    /// transaction stayed open, without writing, longer than GC's grace period).
    pub const TRANSACTION_EXPIRED: &str = "ERR_TRANSACTION_EXPIRED";
    /// A database of the `sqlite-s3vfs` layout was written with another block size than the one
    /// it is opened with (that format does not record it; reading on would return wrong pages).
    pub const BLOCK_SIZE_MISMATCH: &str = "ERR_BLOCK_SIZE_MISMATCH";
    /// An encrypted object did not authenticate: changed, moved, replaced, or the wrong key.
    pub const AUTHENTICATION_FAILED: &str = "ERR_AUTHENTICATION_FAILED";
    /// The database (or an object of it) is encrypted with a key that was not offered.
    pub const KEY_MISSING: &str = "ERR_KEY_MISSING";
    /// `options.encryption.keyProvider` threw, gave something that is not a key, or did not
    /// answer in time. Not remembered: the next object that needs the key asks again.
    pub const KEY_PROVIDER: &str = "ERR_KEY_PROVIDER";
    /// `options.encryption` was given for a database that is not encrypted.
    pub const NOT_ENCRYPTED: &str = "ERR_NOT_ENCRYPTED";
}

impl Error {
    /// A permanent error (see `with_kind` for the others).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            code: code.into(),
            message: message.into(),
            kind: ErrorKind::Permanent,
        }
    }

    pub fn transient(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(code, message).with_kind(ErrorKind::Transient)
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Whether the same request may succeed when sent again (throttling included).
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::Throttled)
    }

    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    pub fn is_unknown_outcome(&self) -> bool {
        self.kind == ErrorKind::UnknownOutcome
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(codes::INVALID_ARGUMENT, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(codes::INTERNAL, message)
    }

    /// Prefixes the message with where the error happened, e.g. `s3://bucket/key`.
    pub fn context(mut self, place: impl fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(ffi_err, msg) => {
                let code = sqlite_code_name(ffi_err.extended_code);
                let message = msg.clone().unwrap_or_else(|| ffi_err.to_string());
                // SQLITE_BUSY: another writer got there first; run the transaction again.
                let kind = if ffi_err.extended_code & 0xff == rusqlite::ffi::SQLITE_BUSY {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::Permanent
                };
                Error::new(code, message).with_kind(kind)
            }
            rusqlite::Error::InvalidParameterName(name) => {
                Error::invalid(format!("no parameter named {name} in the statement"))
            }
            rusqlite::Error::InvalidParameterCount(given, wanted) => Error::new(
                "SQLITE_RANGE",
                format!("the statement takes {wanted} parameters, {given} given"),
            ),
            rusqlite::Error::MultipleStatement => {
                Error::invalid("this call runs one statement; use exec() for several statements")
            }
            _ => Error::new("SQLITE_ERROR", e.to_string()),
        }
    }
}

/// The name of an SQLite (extended) result code, as in `sqlite3.h`.
pub fn sqlite_code_name(code: i32) -> String {
    let name = match code {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        12 => "SQLITE_NOTFOUND",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        15 => "SQLITE_PROTOCOL",
        17 => "SQLITE_SCHEMA",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        23 => "SQLITE_AUTH",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        261 => "SQLITE_BUSY_RECOVERY",
        517 => "SQLITE_BUSY_SNAPSHOT",
        773 => "SQLITE_BUSY_TIMEOUT",
        266 => "SQLITE_IOERR_READ",
        522 => "SQLITE_IOERR_SHORT_READ",
        778 => "SQLITE_IOERR_WRITE",
        1034 => "SQLITE_IOERR_FSYNC",
        1546 => "SQLITE_IOERR_TRUNCATE",
        1802 => "SQLITE_IOERR_FSTAT",
        2570 => "SQLITE_IOERR_DELETE",
        3338 => "SQLITE_IOERR_ACCESS",
        3850 => "SQLITE_IOERR_LOCK",
        267 => "SQLITE_CORRUPT_VTAB",
        523 => "SQLITE_CORRUPT_SEQUENCE",
        779 => "SQLITE_CORRUPT_INDEX",
        264 => "SQLITE_READONLY_RECOVERY",
        520 => "SQLITE_READONLY_CANTLOCK",
        776 => "SQLITE_READONLY_ROLLBACK",
        1032 => "SQLITE_READONLY_DBMOVED",
        275 => "SQLITE_CONSTRAINT_CHECK",
        531 => "SQLITE_CONSTRAINT_COMMITHOOK",
        787 => "SQLITE_CONSTRAINT_FOREIGNKEY",
        1043 => "SQLITE_CONSTRAINT_FUNCTION",
        1299 => "SQLITE_CONSTRAINT_NOTNULL",
        1555 => "SQLITE_CONSTRAINT_PRIMARYKEY",
        1811 => "SQLITE_CONSTRAINT_TRIGGER",
        2067 => "SQLITE_CONSTRAINT_UNIQUE",
        2323 => "SQLITE_CONSTRAINT_VTAB",
        2579 => "SQLITE_CONSTRAINT_ROWID",
        3091 => "SQLITE_CONSTRAINT_DATATYPE",
        270 => "SQLITE_CANTOPEN_NOTEMPDIR",
        1038 => "SQLITE_CANTOPEN_FULLPATH",
        257 => "SQLITE_ERROR_MISSING_COLLSEQ",
        513 => "SQLITE_ERROR_RETRY",
        769 => "SQLITE_ERROR_SNAPSHOT",
        _ => return sqlite_code_name_primary(code),
    };
    name.to_string()
}

fn sqlite_code_name_primary(code: i32) -> String {
    let primary = code & 0xff;
    if primary != code && primary != 0 {
        // An extended code we do not name: report the primary code's name with the number.
        let base = sqlite_code_name(primary);
        return format!("{base}_{code}");
    }
    format!("SQLITE_{code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_extended_codes() {
        assert_eq!(sqlite_code_name(2067), "SQLITE_CONSTRAINT_UNIQUE");
        assert_eq!(sqlite_code_name(5), "SQLITE_BUSY");
        assert_eq!(sqlite_code_name(11), "SQLITE_CORRUPT");
        assert_eq!(sqlite_code_name(10 | (99 << 8)), "SQLITE_IOERR_25354");
    }
}
