//! The `extern "C"` shims of the VFS: the only `unsafe` code in the crate. Each callback decodes
//! its arguments, calls the safe code in `file.rs`, and turns the result into an SQLite result
//! code; a panic is caught and becomes an error code, never an unwind into SQLite or Node.
//!
//! Files that are not ours (temp files, sub-journals, super-journals, other databases) are opened
//! by SQLite's default VFS in the same `sqlite3_file` memory, so SQLite calls that VFS's methods
//! on them directly.

use super::file::{
    delete_journal, refused_pragma, AtomicOp, DbFile, JournalFile, S3File, VfsError,
};
use super::locks::LockLevel;
use super::versioned::VersionedFile;
use super::{lookup, Lookup, VFS_NAME};
use crate::blocks::spill::LocalFile;
use crate::layout::LayoutKind;
use rusqlite::ffi;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

#[repr(C)]
struct Handle {
    base: ffi::sqlite3_file,
    file: *mut S3File,
}

static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    // Version 1: no shared memory (so no WAL) and no memory mapping.
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Registers the VFS with the SQLite linked into this crate (once per process).
pub fn register() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe; the VFS struct and its
    // name are leaked, so they outlive every connection.
    unsafe {
        let default = ffi::sqlite3_vfs_find(ptr::null());
        if default.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let name = CString::new(VFS_NAME).map_err(|e| e.to_string())?;
        let d = &*default;
        let vfs = Box::new(ffi::sqlite3_vfs {
            iVersion: 2,
            szOsFile: d.szOsFile.max(std::mem::size_of::<Handle>() as c_int),
            mxPathname: d.mxPathname.max(1024),
            pNext: ptr::null_mut(),
            zName: name.into_raw(),
            pAppData: default as *mut c_void,
            xOpen: Some(x_open),
            xDelete: Some(x_delete),
            xAccess: Some(x_access),
            xFullPathname: Some(x_full_pathname),
            // The default VFS's loader functions do not use their VFS argument.
            xDlOpen: d.xDlOpen,
            xDlError: d.xDlError,
            xDlSym: d.xDlSym,
            xDlClose: d.xDlClose,
            xRandomness: Some(x_randomness),
            xSleep: Some(x_sleep),
            xCurrentTime: Some(x_current_time),
            xGetLastError: Some(x_get_last_error),
            xCurrentTimeInt64: Some(x_current_time_int64),
            xSetSystemCall: None,
            xGetSystemCall: None,
            xNextSystemCall: None,
        });
        let rc = ffi::sqlite3_vfs_register(Box::into_raw(vfs), 0);
        if rc != ffi::SQLITE_OK {
            return Err(format!("sqlite3_vfs_register returned {rc}"));
        }
    }
    Ok(())
}

/// Runs a callback body, turning a panic into `on_panic`.
fn guarded(on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

unsafe fn default_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    (*vfs).pAppData as *mut ffi::sqlite3_vfs
}

unsafe fn name_of<'a>(z: *const c_char) -> Option<&'a str> {
    if z.is_null() {
        None
    } else {
        CStr::from_ptr(z).to_str().ok()
    }
}

unsafe fn file_of<'a>(f: *mut ffi::sqlite3_file) -> &'a mut S3File {
    &mut *(*(f as *mut Handle)).file
}

/// Turns a result into a code, keeping the detailed error for the connection to report.
fn code_of(file: &S3File, result: Result<(), VfsError>) -> c_int {
    match result {
        Ok(()) => ffi::SQLITE_OK,
        Err(e) => {
            if let Some(detail) = e.detail {
                file.ctx().set_error(e.code, detail);
            }
            e.code
        }
    }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    z_name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // xOpen must leave pMethods NULL when it fails, or SQLite calls xClose on garbage.
    (*file).pMethods = ptr::null();
    let target = name_of(z_name).map(lookup).unwrap_or(Lookup::NotOurs);
    let opened = match target {
        Lookup::Db(ctx) if flags & ffi::SQLITE_OPEN_MAIN_DB != 0 => guarded_open(|| {
            Ok(match ctx.layout {
                LayoutKind::Versioned => S3File::Versioned(Box::new(VersionedFile::open(ctx))),
                LayoutKind::Compat => S3File::Db(DbFile::open(ctx)),
            })
        }),
        Lookup::Journal(ctx)
            if flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0
                && ctx.layout == LayoutKind::Versioned =>
        {
            Ok(S3File::Local(
                ctx.clone(),
                LocalFile::new(ctx.memory.clone()),
            ))
        }
        Lookup::Journal(ctx) if flags & ffi::SQLITE_OPEN_MAIN_JOURNAL != 0 => {
            guarded_open(|| match JournalFile::open(ctx.clone()) {
                Ok(j) => Ok(S3File::Journal(j)),
                Err(e) => {
                    ctx.set_error(ffi::SQLITE_CANTOPEN, e);
                    Err(ffi::SQLITE_CANTOPEN)
                }
            })
        }
        Lookup::Db(_) | Lookup::Journal(_) | Lookup::Wal(_) => Err(ffi::SQLITE_CANTOPEN),
        Lookup::NotOurs => {
            let d = default_vfs(vfs);
            return match (*d).xOpen {
                Some(open) => open(d, z_name, file, flags, out_flags),
                None => ffi::SQLITE_CANTOPEN,
            };
        }
    };
    match opened {
        Ok(s3file) => {
            let handle = file as *mut Handle;
            (*handle).file = Box::into_raw(Box::new(s3file));
            (*handle).base.pMethods = &IO_METHODS;
            if !out_flags.is_null() {
                *out_flags = flags;
            }
            ffi::SQLITE_OK
        }
        Err(code) => code,
    }
}

fn guarded_open(body: impl FnOnce() -> Result<S3File, c_int>) -> Result<S3File, c_int> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(Err(ffi::SQLITE_CANTOPEN))
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    z_name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    match name_of(z_name).map(lookup).unwrap_or(Lookup::NotOurs) {
        // A versioned database's journal lives and dies with its open file.
        Lookup::Journal(ctx) if ctx.layout == LayoutKind::Versioned => ffi::SQLITE_OK,
        Lookup::Journal(ctx) => guarded(ffi::SQLITE_IOERR_DELETE, || match delete_journal(&ctx) {
            Ok(()) => ffi::SQLITE_OK,
            Err(e) => {
                ctx.set_error(ffi::SQLITE_IOERR_DELETE, e);
                ffi::SQLITE_IOERR_DELETE
            }
        }),
        Lookup::Db(_) | Lookup::Wal(_) => ffi::SQLITE_OK,
        Lookup::NotOurs => {
            let d = default_vfs(vfs);
            match (*d).xDelete {
                Some(delete) => delete(d, z_name, sync_dir),
                None => ffi::SQLITE_IOERR_DELETE,
            }
        }
    }
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    z_name: *const c_char,
    flags: c_int,
    res_out: *mut c_int,
) -> c_int {
    let answer = match name_of(z_name).map(lookup).unwrap_or(Lookup::NotOurs) {
        // Only a journal abandoned by a dead writer is reported: SQLite rolls back a journal it
        // is told about, and a live writer's must not be rolled back under its feet.
        Lookup::Journal(ctx) => ctx.layout == LayoutKind::Compat && ctx.journal_state().hot,
        Lookup::Db(_) | Lookup::Wal(_) => false,
        Lookup::NotOurs => {
            let d = default_vfs(vfs);
            return match (*d).xAccess {
                Some(access) => access(d, z_name, flags, res_out),
                None => ffi::SQLITE_IOERR_ACCESS,
            };
        }
    };
    *res_out = answer as c_int;
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    z_name: *const c_char,
    n_out: c_int,
    z_out: *mut c_char,
) -> c_int {
    let ours = name_of(z_name)
        .map(|n| !matches!(lookup(n), Lookup::NotOurs))
        .unwrap_or(false);
    if !ours {
        let d = default_vfs(vfs);
        return match (*d).xFullPathname {
            Some(full) => full(d, z_name, n_out, z_out),
            None => ffi::SQLITE_CANTOPEN,
        };
    }
    let bytes = CStr::from_ptr(z_name).to_bytes_with_nul();
    if bytes.len() > n_out as usize {
        return ffi::SQLITE_CANTOPEN;
    }
    ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, z_out, bytes.len());
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    let d = default_vfs(vfs);
    (*d).xRandomness.map(|f| f(d, n, out)).unwrap_or(0)
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    let d = default_vfs(vfs);
    (*d).xSleep.map(|f| f(d, micros)).unwrap_or(0)
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let d = default_vfs(vfs);
    (*d).xCurrentTime
        .map(|f| f(d, out))
        .unwrap_or(ffi::SQLITE_ERROR)
}

unsafe extern "C" fn x_current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    let d = default_vfs(vfs);
    (*d).xCurrentTimeInt64
        .map(|f| f(d, out))
        .unwrap_or(ffi::SQLITE_ERROR)
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    let d = default_vfs(vfs);
    (*d).xGetLastError.map(|f| f(d, n, out)).unwrap_or(0)
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    let handle = file as *mut Handle;
    let raw = (*handle).file;
    (*handle).file = ptr::null_mut();
    (*handle).base.pMethods = ptr::null();
    if raw.is_null() {
        return ffi::SQLITE_OK;
    }
    guarded(ffi::SQLITE_IOERR_CLOSE, || {
        let mut boxed = Box::from_raw(raw);
        let result = boxed.close();
        code_of(&boxed, result)
    })
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    guarded(ffi::SQLITE_IOERR_READ, || {
        let f = file_of(file);
        let out = std::slice::from_raw_parts_mut(buf as *mut u8, amount.max(0) as usize);
        let result = f.read(offset.max(0) as u64, out);
        code_of(f, result)
    })
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    guarded(ffi::SQLITE_IOERR_WRITE, || {
        let f = file_of(file);
        let data = std::slice::from_raw_parts(buf as *const u8, amount.max(0) as usize);
        let result = f.write(offset.max(0) as u64, data);
        code_of(f, result)
    })
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    guarded(ffi::SQLITE_IOERR_TRUNCATE, || {
        let f = file_of(file);
        let result = f.truncate(size.max(0) as u64);
        code_of(f, result)
    })
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    guarded(ffi::SQLITE_IOERR_FSYNC, || {
        let f = file_of(file);
        let result = f.sync();
        code_of(f, result)
    })
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size_out: *mut ffi::sqlite3_int64,
) -> c_int {
    guarded(ffi::SQLITE_IOERR_FSTAT, || {
        let f = file_of(file);
        match f.file_size() {
            Ok(size) => {
                *size_out = size as ffi::sqlite3_int64;
                ffi::SQLITE_OK
            }
            Err(e) => code_of(f, Err(e)),
        }
    })
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guarded(ffi::SQLITE_IOERR_LOCK, || {
        let f = file_of(file);
        let Some(level) = LockLevel::from_sqlite(level) else {
            return ffi::SQLITE_MISUSE;
        };
        let result = f.lock(level);
        if result.is_ok() {
            f.ctx().clear_busy_error();
        }
        code_of(f, result)
    })
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guarded(ffi::SQLITE_IOERR_UNLOCK, || {
        let f = file_of(file);
        let Some(level) = LockLevel::from_sqlite(level) else {
            return ffi::SQLITE_MISUSE;
        };
        let result = f.unlock(level);
        code_of(f, result)
    })
}

unsafe extern "C" fn x_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    res_out: *mut c_int,
) -> c_int {
    guarded(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, || {
        *res_out = file_of(file).check_reserved_lock() as c_int;
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // A panic inside a publish may come after the root was sent: never an IOERR there (SQLite
    // would take its journal fallback and publish the transaction a second time).
    let on_panic = match op {
        ffi::SQLITE_FCNTL_COMMIT_PHASETWO | ffi::SQLITE_FCNTL_COMMIT_ATOMIC_WRITE => {
            ffi::SQLITE_PROTOCOL
        }
        _ => ffi::SQLITE_IOERR,
    };
    guarded(on_panic, || {
        let f = file_of(file);
        match op {
            ffi::SQLITE_FCNTL_PRAGMA => {
                // arg is char*[3]: [0] our error message out, [1] the pragma's name, [2] its value.
                let args = arg as *mut *mut c_char;
                let name = name_of(*args.add(1)).unwrap_or("");
                let value = name_of(*args.add(2));
                match refused_pragma(name, value) {
                    Some(message) => {
                        let message = CString::new(message).unwrap_or_default();
                        *args = ffi::sqlite3_mprintf(c"%s".as_ptr(), message.as_ptr());
                        ffi::SQLITE_ERROR
                    }
                    None => ffi::SQLITE_NOTFOUND,
                }
            }
            ffi::SQLITE_FCNTL_COMMIT_PHASETWO => {
                let result = f.commit_phase_two();
                code_of(f, result)
            }
            ffi::SQLITE_FCNTL_BEGIN_ATOMIC_WRITE => {
                let result = f.atomic_write(AtomicOp::Begin);
                code_of(f, result)
            }
            ffi::SQLITE_FCNTL_COMMIT_ATOMIC_WRITE => {
                let result = f.atomic_write(AtomicOp::Commit);
                code_of(f, result)
            }
            ffi::SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE => {
                let result = f.atomic_write(AtomicOp::Rollback);
                code_of(f, result)
            }
            _ => ffi::SQLITE_NOTFOUND,
        }
    })
}

unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    // What SQLite assumes when a VFS says 0, as the Python library's does: the same journal
    // layout on both sides.
    512
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // Batch atomic writes for the versioned layout: SQLite then skips its journal and hands us
    // the whole transaction between BEGIN_ATOMIC_WRITE and COMMIT_ATOMIC_WRITE.
    guarded(0, || file_of(file).device_characteristics())
}
