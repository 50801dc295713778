//! How a block object's bytes are stored: as SQLite wrote them, or compressed with zstd, each
//! object on its own (a reader fetches one block and decodes it alone). The codec of each object
//! is in the map entry that points at it (`Pointer::codec`), so a database whose old blocks are
//! plain and new ones compressed (compression turned on later, or off again) reads correctly;
//! the database's current choice is recorded in its root (`FLAG_ZSTD`).
//!
//! The CRC-32C in the entry is of the stored bytes: a block is verified before it is decoded,
//! and the disk cache keeps stored bytes (verified again on every hit). The memory cache keeps
//! decoded bytes, what SQLite reads.

use super::format::{Pointer, Uploads, FLAG_CODECS, FLAG_ZSTD};
use super::seal::{key_id_of, key_missing, object_identity, DatabaseId, Keyring};
use super::verify_block;
use crate::error::{codes, Error, Result};
use bytes::Bytes;
use std::sync::Arc;

/// The object holds the block as it is.
pub const CODEC_RAW: u32 = 0;
/// The object holds one zstd frame of the block.
pub const CODEC_ZSTD: u32 = 1;

/// Bit of a codec: the object is sealed (`seal.rs`), then encoded by the low byte.
pub const CODEC_SEALED: u32 = 0x100;
/// zstd's own default: about 3–5× smaller SQLite pages at hundreds of MB/s.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How a writer encodes new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Zstd {
        level: i32,
    },
}

impl Compression {
    /// The root flags that record this choice (and, once anything is compressed, that entries
    /// carry codecs).
    pub fn root_flags(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Zstd { .. } => FLAG_ZSTD | FLAG_CODECS,
        }
    }

    /// The choice a root records (its writer's level is not recorded: zstd's default is used).
    pub fn recorded(flags: u32) -> Compression {
        if flags & FLAG_ZSTD != 0 {
            Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            }
        } else {
            Compression::None
        }
    }

    /// Encodes a block for upload: its stored bytes and their codec. A block that does not get
    /// smaller is stored as it is.
    pub fn encode(self, plain: &Bytes) -> Result<(Bytes, u32)> {
        match self {
            Compression::None => Ok((plain.clone(), CODEC_RAW)),
            Compression::Zstd { level } => {
                let packed = zstd::bulk::compress(plain, level).map_err(|e| {
                    Error::internal(format!("zstd could not compress a block: {e}"))
                })?;
                if packed.len() < plain.len() {
                    Ok((Bytes::from(packed), CODEC_ZSTD))
                } else {
                    Ok((plain.clone(), CODEC_RAW))
                }
            }
        }
    }
}

/// How one database's new blocks are stored, and how any of its blocks is read back: the
/// compression, then (encrypted databases) the sealing with the database's keys and id.
#[derive(Debug, Clone, Default)]
pub struct BlockCodec {
    pub compression: Compression,
    pub keys: Option<Arc<Keyring>>,
    pub db: DatabaseId,
}

impl BlockCodec {
    /// Encodes block `index` for upload and names it: the stored bytes and the pointer to them.
    pub fn seal_block(
        &self,
        uploads: &mut Uploads,
        index: u64,
        plain: &Bytes,
    ) -> Result<(Bytes, Pointer)> {
        let (packed, codec) = self.compression.encode(plain)?;
        match &self.keys {
            None => Ok((packed.clone(), uploads.next(crc32c::crc32c(&packed), codec))),
            Some(keys) => {
                let mut p = uploads.next(0, codec | CODEC_SEALED);
                let stored = keys.seal(&object_identity(b"block", &self.db, index, &p), &packed)?;
                p.crc = crc32c::crc32c(&stored);
                Ok((stored, p))
            }
        }
    }

    /// Block `index`'s content from its stored bytes: checked (its CRC-32C, or for a sealed
    /// object its authentication), then decoded into at most `block_size` bytes.
    pub fn open_block(
        &self,
        key: &str,
        index: u64,
        p: &Pointer,
        stored: Bytes,
        block_size: u64,
    ) -> Result<Bytes> {
        let packed = self.unseal(key, index, p, stored)?;
        decode(key, p.codec & !CODEC_SEALED, packed, block_size)
    }

    /// The stored bytes of block `index` under a new name (`to`, from the same codec): the same
    /// bytes for a plain object (checked first), opened and sealed again for a sealed one (its
    /// name is part of what it is bound to).
    pub fn rename_block(
        &self,
        key: &str,
        index: u64,
        from: &Pointer,
        mut to: Pointer,
        stored: Bytes,
    ) -> Result<(Bytes, Pointer)> {
        let packed = self.unseal(key, index, from, stored)?;
        let stored = match (&self.keys, from.codec & CODEC_SEALED != 0) {
            (Some(keys), true) => {
                keys.seal(&object_identity(b"block", &self.db, index, &to), &packed)?
            }
            _ => packed,
        };
        to.crc = crc32c::crc32c(&stored);
        Ok((stored, to))
    }

    /// Checks a stored object and takes off its seal: the encoded (compressed or not) bytes.
    fn unseal(&self, key: &str, index: u64, p: &Pointer, stored: Bytes) -> Result<Bytes> {
        if p.codec & CODEC_SEALED == 0 {
            // A plain object in an encrypted database is a planted one (every object of it is
            // sealed; the map that says otherwise is itself authenticated).
            if self.keys.is_some() {
                return Err(super::seal::tampered(key));
            }
            verify_block(key, &stored, p.crc)?;
            return Ok(stored);
        }
        let Some(keys) = &self.keys else {
            return Err(key_missing(key, &key_id_of(&stored).unwrap_or_default()));
        };
        let identity = object_identity(b"block", &self.db, index, p);
        keys.open(key, &identity, &stored).map(Bytes::from)
    }

    /// Seals map segment `index`'s bytes for the pointer that will name them (plain when the
    /// database is not encrypted); the pointer gets the codec that says so.
    pub fn seal_segment(&self, index: u64, p: &mut Pointer, bytes: Bytes) -> Result<Bytes> {
        let Some(keys) = &self.keys else {
            return Ok(bytes);
        };
        p.codec |= CODEC_SEALED;
        keys.seal(&object_identity(b"segment", &self.db, index, p), &bytes)
    }
}

/// Decodes a block object's encoded bytes (already checked) into at most `block_size` bytes: a
/// frame that would inflate past a block is damage, not a block.
pub fn decode(key: &str, codec: u32, stored: Bytes, block_size: u64) -> Result<Bytes> {
    let corrupt = |why: String| {
        Error::new(
            codes::CORRUPT_OBJECT,
            format!("{key}: the compressed block does not decode ({why})"),
        )
    };
    match codec {
        CODEC_RAW => Ok(stored),
        CODEC_ZSTD => {
            // The frame says its size (ours always do): allocate that, not a whole block for a
            // short one; more than a block is damage, refused before anything is allocated.
            let capacity = match zstd::zstd_safe::get_frame_content_size(&stored) {
                Ok(Some(n)) if n > block_size => {
                    return Err(corrupt(format!("{n} bytes, more than a block")))
                }
                Ok(Some(n)) => n,
                _ => block_size,
            };
            zstd::bulk::decompress(&stored, capacity as usize)
                .map(Bytes::from)
                .map_err(|e| corrupt(e.to_string()))
        }
        other => Err(Error::new(
            codes::UNSUPPORTED,
            format!(
                "{key}: encoded with codec {other}, written by a newer version of sqlite-s3vfs; \
                 upgrade to read this database"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_incompressible_ones_stay_raw() {
        let zstd = Compression::Zstd { level: 3 };
        let text = Bytes::from("SQLite page text ".repeat(300));
        let (stored, codec) = zstd.encode(&text).unwrap();
        assert_eq!(codec, CODEC_ZSTD);
        assert!(stored.len() < text.len() / 10);
        assert_eq!(decode("k", codec, stored, 8192).unwrap(), text);

        let noise: Bytes = (0..4096)
            .map(|_| fastrand::u8(..))
            .collect::<Vec<_>>()
            .into();
        let (stored, codec) = zstd.encode(&noise).unwrap();
        assert_eq!((codec, &stored), (CODEC_RAW, &noise));
        assert_eq!(
            Compression::None.encode(&text).unwrap(),
            (text.clone(), CODEC_RAW)
        );
    }

    #[test]
    fn damage_a_bomb_and_an_unknown_codec_are_errors() {
        let zstd = Compression::Zstd { level: 3 };
        let big = Bytes::from(vec![0u8; 65536]);
        let (stored, _) = zstd.encode(&big).unwrap();
        // Inflates past the block size: refused, not allocated.
        assert_eq!(
            decode("k", CODEC_ZSTD, stored.clone(), 4096)
                .unwrap_err()
                .code,
            codes::CORRUPT_OBJECT
        );
        let mut broken = stored.to_vec();
        let mid = broken.len() / 2;
        broken[mid] ^= 0xff;
        broken.truncate(broken.len() - 1);
        assert!(decode("k", CODEC_ZSTD, Bytes::from(broken), 65536).is_err());
        assert_eq!(
            decode("k", 9, stored, 65536).unwrap_err().code,
            codes::UNSUPPORTED
        );
    }

    #[test]
    fn the_choice_is_recorded_in_root_flags() {
        for c in [
            Compression::None,
            Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            },
        ] {
            assert_eq!(Compression::recorded(c.root_flags()), c);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_to_a_block_or_an_error(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(b) = decode("k", CODEC_ZSTD, Bytes::from(bytes), 4096) {
                proptest::prop_assert!(b.len() <= 4096);
            }
        }
    }
}
