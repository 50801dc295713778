//! Local temp files for buffered bytes that leave memory (`memoryLimit`). They are anonymous
//! (unlinked at creation, in the OS temp directory, `TMPDIR`): nothing survives the process,
//! so a crash can never leave a journal on disk that a later run would take for a real one.

use super::budget::MemoryBudget;
use crate::error::{codes, Error, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

fn temp_error(what: &str, e: std::io::Error) -> Error {
    Error::new(
        codes::TEMP_FILE,
        format!("the temp file for writes past memoryLimit could not be {what}: {e}"),
    )
}

/// A temp file created at its first write.
#[derive(Default)]
pub struct TempFile {
    file: Mutex<Option<File>>,
}

impl TempFile {
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut guard = self.file.lock().unwrap();
        if guard.is_none() {
            *guard = Some(tempfile::tempfile().map_err(|e| temp_error("created", e))?);
        }
        let f = guard.as_mut().expect("created above");
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.write_all(data))
            .map_err(|e| temp_error("written", e))
    }

    /// `len` bytes at `offset` (they must have been written).
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut guard = self.file.lock().unwrap();
        let f = guard
            .as_mut()
            .ok_or_else(|| Error::internal("read of a temp file that was never written"))?;
        let mut buf = vec![0u8; len];
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(|e| temp_error("read", e))?;
        Ok(buf)
    }

    /// Frees the disk space (the file stays open for the next transaction).
    pub fn clear(&self) {
        if let Some(f) = self.file.lock().unwrap().as_mut() {
            let _ = f.set_len(0);
        }
    }
}

/// A local file (the versioned layout's rollback journal): in memory until the database's
/// buffered writes pass `memoryLimit`, then wholly in a temp file.
pub struct LocalFile {
    mem: Vec<u8>,
    file: Option<TempFile>,
    size: u64,
    budget: Arc<MemoryBudget>,
}

impl LocalFile {
    pub fn new(budget: Arc<MemoryBudget>) -> Self {
        LocalFile {
            mem: Vec::new(),
            file: None,
            size: 0,
            budget,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads into `buf` from `offset`; returns how many bytes the file had there.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let n = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        match &self.file {
            None => buf[..n].copy_from_slice(&self.mem[offset as usize..offset as usize + n]),
            Some(f) => buf[..n].copy_from_slice(&f.read_at(offset, n)?),
        }
        Ok(n)
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset + data.len() as u64;
        if let Some(f) = &self.file {
            if offset > self.size {
                // The gap reads as zeros, as in memory.
                f.write_at(self.size, &vec![0u8; (offset - self.size) as usize])?;
            }
            f.write_at(offset, data)?;
            self.size = self.size.max(end);
            return Ok(());
        }
        let before = self.mem.len();
        if self.mem.len() < end as usize {
            self.mem.resize(end as usize, 0);
        }
        self.mem[offset as usize..end as usize].copy_from_slice(data);
        self.size = self.mem.len() as u64;
        self.budget.adjust(before, self.mem.len());
        if self.budget.over() {
            self.move_to_disk()?;
        }
        Ok(())
    }

    fn move_to_disk(&mut self) -> Result<()> {
        let f = TempFile::default();
        f.write_at(0, &self.mem)?;
        self.budget.adjust(self.mem.len(), 0);
        self.mem = Vec::new();
        self.file = Some(f);
        Ok(())
    }

    pub fn truncate(&mut self, size: u64) -> Result<()> {
        match &self.file {
            None => {
                let before = self.mem.len();
                self.mem.resize(size as usize, 0);
                self.budget.adjust(before, self.mem.len());
            }
            Some(f) if size == 0 => {
                // An emptied journal (a transaction ended) starts again in memory.
                f.clear();
                self.file = None;
            }
            Some(f) if size > self.size => {
                f.write_at(self.size, &vec![0u8; (size - self.size) as usize])?;
            }
            Some(_) => {}
        }
        self.size = size;
        Ok(())
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        self.budget.adjust(self.mem.len(), 0);
    }
}
