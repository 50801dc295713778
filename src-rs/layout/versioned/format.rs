//! The bytes of the versioned layout's objects: roots (one per version) and block-map segments.
//! Every object ends with a CRC-32C of everything before it, checked on every read; block objects
//! are raw bytes whose CRC-32C sits in the map entry that points at them.
//!
//! Root (little-endian):
//! ```text
//!   0 magic "S3VFSr1\0"   8 attempt id (16)   24 version u64   32 parent u64   40 flags u32
//!  44 page size u32      48 block size u64   56 file size u64  64 created ms u64
//!  72 map kind u32 (0 inline, 1 segments)   76 entries u32   80 segment length u32
//!  84 block 0 length u32  88 entries x 32 bytes, then block 0, then crc32c u32
//! ```
//! The attempt id sits at a fixed offset so that deciding an ambiguous commit needs only the
//! first bytes of a root. A map entry is a `Pointer` (version, attempt, upload number, crc32c);
//! version 0 means "no object": the block reads as zeros.
//!
//! Entries with a codec (`FLAG_CODECS` on a root, magic `S3VFSm2` on a segment) are 36 bytes:
//! the 32 above, then a u32 saying how the block object is encoded (`codec.rs`: 0 as it is,
//! 1 zstd). A database only takes that form once it uses compression, so that one which never
//! did stays readable by versions of this library that predate it.

use super::seal::{identity, key_id_of, key_missing, DatabaseId, Keyring};
use crate::error::{codes, Error, Result};
use bytes::Bytes;

pub const ROOT_MAGIC: &[u8; 8] = b"S3VFSr1\0";
pub const SEGMENT_MAGIC: &[u8; 8] = b"S3VFSm1\0";
/// A segment whose entries carry a codec.
pub const SEGMENT_MAGIC_CODECS: &[u8; 8] = b"S3VFSm2\0";
pub const ROOT_HEADER_LEN: usize = 88;
const ENTRY_LEN: usize = 32;
const ENTRY_LEN_CODECS: usize = 36;

/// The length of a map entry in an object that does (or does not) carry codecs.
fn entry_len(codecs: bool) -> usize {
    if codecs {
        ENTRY_LEN_CODECS
    } else {
        ENTRY_LEN
    }
}
/// Bytes of a root that hold its attempt id and version (for deciding an ambiguous commit).
pub const ROOT_ID_LEN: u64 = 32;

/// Root flag: the version was pruned by GC; only the header is left, so that its key can never be
/// created again by a stale writer.
pub const FLAG_PRUNED: u32 = 1;
/// Root flag: new blocks are compressed with zstd (the database's recorded choice: a writer
/// that is given no `compression` option follows it).
pub const FLAG_ZSTD: u32 = 2;
/// Root flag: the root's map entries carry a codec (36-byte entries). Once set it stays set in
/// every later version, so older versions of this library refuse the database instead of
/// reading compressed blocks as pages.
pub const FLAG_CODECS: u32 = 4;
/// Root flag: the database is encrypted (`seal.rs`): this root is sealed (all but a plain
/// header), and so is every block and map segment it names.
pub const FLAG_SEALED: u32 = 8;
/// Every flag this version understands.
const KNOWN_FLAGS: u32 = FLAG_PRUNED | FLAG_ZSTD | FLAG_CODECS | FLAG_SEALED;

/// A sealed root's plain header: magic, attempt, version, parent, flags (as a plain root's
/// first 44 bytes), then the database's id. The rest is the plain root, sealed, with this
/// header as part of its associated data.
const SEALED_HEADER_LEN: usize = 60;

pub const MIN_BLOCK_SIZE: u64 = 512;
pub const MAX_BLOCK_SIZE: u64 = 1 << 30;
/// SQLite's largest database: 2^32 pages of 64 KiB.
pub const MAX_FILE_SIZE: u64 = 1 << 48;

pub type AttemptId = [u8; 16];

/// Where one block (or map segment) of a version lives: the commit attempt that uploaded it, the
/// upload's number within that attempt, and the CRC-32C of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pointer {
    pub version: u64,
    pub attempt: AttemptId,
    pub seq: u32,
    /// CRC-32C of the stored bytes (as encoded by `codec`).
    pub crc: u32,
    /// How the object's bytes are encoded (`codec.rs`); 0, as they are, in objects without codecs.
    pub codec: u32,
}

impl Pointer {
    pub fn is_null(&self) -> bool {
        self.version == 0
    }

    fn encode(&self, out: &mut Vec<u8>, codecs: bool) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.attempt);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
        if codecs {
            out.extend_from_slice(&self.codec.to_le_bytes());
        } else {
            // Only a database with FLAG_CODECS may hold encoded blocks (`commit::prepare`).
            debug_assert_eq!(self.codec, 0, "a codec in an object without codecs");
        }
    }

    fn decode(b: &[u8], codecs: bool) -> Pointer {
        Pointer {
            version: u64_at(b, 0),
            attempt: b[8..24].try_into().unwrap(),
            seq: u32_at(b, 24),
            crc: u32_at(b, 28),
            codec: if codecs { u32_at(b, 32) } else { 0 },
        }
    }
}

/// Names the uploads of one commit attempt: version, attempt id, and a running upload number.
pub struct Uploads {
    pub version: u64,
    pub attempt: AttemptId,
    seq: u32,
}

impl Uploads {
    /// Upload numbers start after `first_seq` (deserialize uses 1 for every block).
    pub fn new(version: u64, attempt: AttemptId, first_seq: u32) -> Self {
        Uploads {
            version,
            attempt,
            seq: first_seq,
        }
    }

    /// The pointer of the next upload, for bytes with this CRC-32C, encoded by `codec`.
    pub fn next(&mut self, crc: u32, codec: u32) -> Pointer {
        self.seq += 1;
        Pointer {
            version: self.version,
            attempt: self.attempt,
            seq: self.seq,
            crc,
            codec,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapRef {
    /// The whole block map (small databases): entry i is block i.
    Inline(Vec<Pointer>),
    /// Entry s points at the segment holding blocks `s*segment_len ..`.
    Segments(Vec<Pointer>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub attempt: AttemptId,
    pub version: u64,
    pub parent: u64,
    pub flags: u32,
    pub page_size: u32,
    pub block_size: u64,
    pub file_size: u64,
    pub created_ms: u64,
    pub segment_len: u32,
    pub map: MapRef,
    pub block0: Bytes,
    /// The database's id (encrypted databases; zeros otherwise): part of every sealed object's
    /// associated data.
    pub db_id: DatabaseId,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn corrupt(what: &str, why: &str) -> Error {
    Error::new(codes::CORRUPT_OBJECT, format!("{what}: {why}"))
}

fn seal(mut out: Vec<u8>) -> Bytes {
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Bytes::from(out)
}

/// Checks the trailing CRC-32C; returns the bytes before it.
fn unseal<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8]> {
    if bytes.len() < 4 {
        return Err(corrupt(what, "too short"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32_at(crc, 0) {
        return Err(corrupt(what, "checksum mismatch (the object is damaged)"));
    }
    Ok(body)
}

impl Root {
    /// Whether its map entries carry codecs.
    pub fn has_codecs(&self) -> bool {
        self.flags & FLAG_CODECS != 0
    }

    pub fn is_sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }

    /// The bytes to store: with `keys`, sealed (`seal.rs`), else plain.
    pub fn encode_for(&self, keys: Option<&Keyring>) -> Result<Bytes> {
        let Some(keys) = keys else {
            return Ok(self.encode());
        };
        let sealed_root = Root {
            flags: self.flags | FLAG_SEALED | FLAG_CODECS,
            ..self.clone()
        };
        let mut out = Vec::with_capacity(SEALED_HEADER_LEN + 200);
        out.extend_from_slice(ROOT_MAGIC);
        out.extend_from_slice(&self.attempt);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.parent.to_le_bytes());
        out.extend_from_slice(&sealed_root.flags.to_le_bytes());
        out.extend_from_slice(&self.db_id);
        let sealed = keys.seal(&root_aad(&out), &sealed_root.encode())?;
        out.extend_from_slice(&sealed);
        Ok(Bytes::from(out))
    }

    /// A stored root, plain or sealed. With `keys` (an encrypted database), a plain root is an
    /// error unless it is a tombstone; without, a sealed one is `ERR_KEY_MISSING`.
    pub fn decode_with(bytes: &[u8], what: &str, keys: Option<&Keyring>) -> Result<Root> {
        if !(bytes.len() >= SEALED_HEADER_LEN && is_sealed_root(bytes)) {
            let root = Root::decode(bytes, what)?;
            if keys.is_some() && !root.is_pruned() {
                return Err(Error::new(
                    codes::NOT_ENCRYPTED,
                    format!(
                        "{what}: the database is not encrypted, but options.encryption was given \
                         (to encrypt it, deserialize it into a new prefix with the key)"
                    ),
                ));
            }
            return Ok(root);
        }
        let (header, body) = bytes.split_at(SEALED_HEADER_LEN);
        let Some(keys) = keys else {
            let id = key_id_of(body).unwrap_or_default();
            return Err(key_missing(&format!("{what}: the database"), &id));
        };
        let inner = keys.open(what, &root_aad(header), body)?;
        let mut root = Root::decode(&inner, what)?;
        // The header is authenticated (associated data); the root inside must agree with it.
        if root.attempt[..] != header[8..24]
            || root.version != u64_at(header, 24)
            || root.flags != u32_at(header, 40)
        {
            return Err(super::seal::tampered(what));
        }
        root.db_id = header[44..60].try_into().unwrap();
        Ok(root)
    }

    pub fn encode(&self) -> Bytes {
        let entries = match &self.map {
            MapRef::Inline(e) | MapRef::Segments(e) => e,
        };
        let codecs = self.has_codecs();
        let mut out = Vec::with_capacity(
            ROOT_HEADER_LEN + entries.len() * entry_len(codecs) + self.block0.len() + 4,
        );
        out.extend_from_slice(ROOT_MAGIC);
        out.extend_from_slice(&self.attempt);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.parent.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.page_size.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&self.file_size.to_le_bytes());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        let kind: u32 = matches!(self.map, MapRef::Segments(_)) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.segment_len.to_le_bytes());
        out.extend_from_slice(&(self.block0.len() as u32).to_le_bytes());
        for p in entries {
            p.encode(&mut out, codecs);
        }
        out.extend_from_slice(&self.block0);
        seal(out)
    }

    pub fn decode(bytes: &[u8], what: &str) -> Result<Root> {
        let b = unseal(bytes, what)?;
        if b.len() < ROOT_HEADER_LEN || &b[..8] != ROOT_MAGIC {
            return Err(corrupt(what, "not a root of the versioned layout"));
        }
        let count = u32_at(b, 76) as usize;
        let block0_len = u32_at(b, 84) as usize;
        let len = entry_len(u32_at(b, 40) & FLAG_CODECS != 0);
        if b.len() != ROOT_HEADER_LEN + count * len + block0_len {
            return Err(corrupt(what, "inconsistent lengths"));
        }
        let entries: Vec<Pointer> = (0..count)
            .map(|k| Pointer::decode(&b[ROOT_HEADER_LEN + k * len..], len == ENTRY_LEN_CODECS))
            .collect();
        let map = match u32_at(b, 72) {
            0 => MapRef::Inline(entries),
            1 => MapRef::Segments(entries),
            _ => return Err(corrupt(what, "unknown map kind")),
        };
        let start0 = ROOT_HEADER_LEN + count * len;
        let root = Root {
            attempt: b[8..24].try_into().unwrap(),
            version: u64_at(b, 24),
            parent: u64_at(b, 32),
            flags: u32_at(b, 40),
            page_size: u32_at(b, 44),
            block_size: u64_at(b, 48),
            file_size: u64_at(b, 56),
            created_ms: u64_at(b, 64),
            segment_len: u32_at(b, 80),
            map,
            block0: Bytes::copy_from_slice(&b[start0..start0 + block0_len]),
            db_id: [0; 16],
        };
        root.validate(what)?;
        Ok(root)
    }

    /// Bounds and cross-checks every field a reader relies on: a planted or future-format root
    /// is refused here, before anything allocates from its sizes or reads its blocks as pages.
    fn validate(&self, what: &str) -> Result<()> {
        let unknown = self.flags & !KNOWN_FLAGS;
        if unknown != 0 {
            // Compression, encryption, ...: a newer writer's format. Reading its blocks as raw
            // pages would return garbage, and writing on top would republish it as plain.
            return Err(Error::new(
                codes::UNSUPPORTED,
                format!(
                    "{what}: written by a newer version of sqlite-s3vfs (format flags \
                     {unknown:#x}); upgrade to read or write this database"
                ),
            ));
        }
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err(corrupt(what, "block size out of range"));
        }
        if !(1024..=65536).contains(&self.segment_len) {
            return Err(corrupt(what, "segment length out of range"));
        }
        if self.page_size != 0
            && !(self.page_size.is_power_of_two() && (512..=65536).contains(&self.page_size))
        {
            return Err(corrupt(what, "page size out of range"));
        }
        if self.file_size > MAX_FILE_SIZE {
            return Err(corrupt(what, "file size out of range"));
        }
        if self.is_pruned() {
            return Ok(());
        }
        let count = self.file_size.div_ceil(self.block_size);
        let enough = match &self.map {
            MapRef::Inline(entries) => entries.len() as u64 >= count,
            MapRef::Segments(segs) => segs.len() as u64 >= count.div_ceil(self.segment_len as u64),
        };
        if !enough {
            return Err(corrupt(what, "the block map is shorter than the file"));
        }
        Ok(())
    }

    pub fn is_pruned(&self) -> bool {
        self.flags & FLAG_PRUNED != 0
    }

    /// What GC leaves at a pruned version's key: the header only, plain (also in an encrypted
    /// database: it holds no page, and a forged one could only make a version look pruned,
    /// which deleting its objects does too).
    pub fn tombstone(&self) -> Root {
        Root {
            flags: (self.flags | FLAG_PRUNED) & !FLAG_SEALED,
            map: MapRef::Inline(Vec::new()),
            block0: Bytes::new(),
            ..self.clone()
        }
    }
}

/// Bytes a root's header reads to tell whether it is sealed.
pub const SEALED_FLAG_PREFIX_LEN: u64 = 44;

/// Whether a root (or its first `SEALED_FLAG_PREFIX_LEN` bytes) is a sealed one.
pub fn is_sealed_root(prefix_bytes: &[u8]) -> bool {
    prefix_bytes.len() >= SEALED_FLAG_PREFIX_LEN as usize
        && &prefix_bytes[..8] == ROOT_MAGIC
        && u32_at(prefix_bytes, 40) & FLAG_SEALED != 0
}

/// A sealed root's associated data: its plain header.
fn root_aad(header: &[u8]) -> Vec<u8> {
    let db: DatabaseId = header[44..60].try_into().unwrap();
    identity(b"root", &db, &[header])
}

/// Reads the attempt id and version from a root's first `ROOT_ID_LEN` bytes.
pub fn root_identity(prefix_bytes: &[u8]) -> Option<(AttemptId, u64)> {
    if prefix_bytes.len() < ROOT_ID_LEN as usize || &prefix_bytes[..8] != ROOT_MAGIC {
        return None;
    }
    Some((
        prefix_bytes[8..24].try_into().ok()?,
        u64_at(prefix_bytes, 24),
    ))
}

/// A map segment; with `codecs` (a database with `FLAG_CODECS`), in the form whose entries carry one.
pub fn encode_segment(entries: &[Pointer], codecs: bool) -> Bytes {
    let mut out = Vec::with_capacity(12 + entries.len() * entry_len(codecs) + 4);
    out.extend_from_slice(if codecs {
        SEGMENT_MAGIC_CODECS
    } else {
        SEGMENT_MAGIC
    });
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for p in entries {
        p.encode(&mut out, codecs);
    }
    seal(out)
}

/// A map segment, in either form (a segment an older version wrote stays in use after the
/// database takes codecs).
pub fn decode_segment(bytes: &[u8], what: &str) -> Result<Vec<Pointer>> {
    let b = unseal(bytes, what)?;
    let codecs = match b.get(..8) {
        Some(m) if m == SEGMENT_MAGIC => false,
        Some(m) if m == SEGMENT_MAGIC_CODECS => true,
        _ => return Err(corrupt(what, "not a map segment of the versioned layout")),
    };
    if b.len() < 12 {
        return Err(corrupt(what, "too short"));
    }
    let count = u32_at(b, 8) as usize;
    let len = entry_len(codecs);
    if b.len() != 12 + count * len {
        return Err(corrupt(what, "inconsistent length"));
    }
    Ok((0..count)
        .map(|k| Pointer::decode(&b[12 + k * len..], codecs))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(v: u64) -> Pointer {
        Pointer {
            version: v,
            attempt: [v as u8; 16],
            seq: 7,
            crc: 0xdead_beef,
            codec: 0,
        }
    }

    #[test]
    fn roots_and_segments_round_trip_and_detect_damage() {
        let root = Root {
            attempt: [9; 16],
            version: 42,
            parent: 41,
            flags: 0,
            page_size: 4096,
            block_size: 8192,
            file_size: 3 * 8192,
            created_ms: 1,
            segment_len: 1024,
            map: MapRef::Inline(vec![Pointer::default(), pointer(3), pointer(42)]),
            block0: Bytes::from_static(b"SQLite format 3\0"),
            db_id: [0; 16],
        };
        let bytes = root.encode();
        assert_eq!(Root::decode(&bytes, "r").unwrap(), root);
        assert_eq!(root_identity(&bytes[..32]), Some(([9; 16], 42)));
        let mut damaged = bytes.to_vec();
        damaged[100] ^= 1;
        let err = Root::decode(&damaged, "r").unwrap_err();
        assert_eq!(err.code, codes::CORRUPT_OBJECT);

        let seg = vec![pointer(1), Pointer::default()];
        assert_eq!(
            decode_segment(&encode_segment(&seg, false), "s").unwrap(),
            seg
        );
        let coded = vec![
            Pointer {
                codec: 1,
                ..pointer(1)
            },
            pointer(2),
        ];
        let both = encode_segment(&coded, true);
        assert_eq!(both.len(), 12 + 2 * 36 + 4);
        assert_eq!(decode_segment(&both, "s").unwrap(), coded);

        // A root with codecs keeps each entry's codec; one without has 32-byte entries.
        let with = Root {
            flags: FLAG_CODECS | FLAG_ZSTD,
            map: MapRef::Inline(vec![
                Pointer::default(),
                Pointer {
                    codec: 1,
                    ..pointer(3)
                },
                pointer(42),
            ]),
            ..root.clone()
        };
        let with_bytes = with.encode();
        assert_eq!(with_bytes.len(), bytes.len() + 3 * 4);
        assert_eq!(Root::decode(&with_bytes, "r").unwrap(), with);
        assert_eq!(root_identity(&with_bytes[..32]), Some(([9; 16], 42)));
        assert!(decode_segment(&bytes, "s").is_err());
        let t = root.tombstone();
        assert!(Root::decode(&t.encode(), "t").unwrap().is_pruned());
    }

    /// Damage the body behind a valid seal would not be caught by the CRC: re-seal after mutating.
    fn resealed(mut body: Vec<u8>) -> Vec<u8> {
        body.truncate(body.len().saturating_sub(4));
        seal(body).to_vec()
    }

    fn sample_root() -> Root {
        Root {
            attempt: [3; 16],
            version: 9,
            parent: 8,
            flags: 0,
            page_size: 4096,
            block_size: 4096,
            file_size: 5 * 4096,
            created_ms: 1,
            segment_len: 1024,
            map: MapRef::Inline((0..5).map(pointer).collect()),
            block0: Bytes::from(vec![1u8; 100]),
            db_id: [0; 16],
        }
    }

    #[test]
    fn roots_with_unknown_flags_or_impossible_sizes_are_refused() {
        let mut r = sample_root();
        r.flags = 16;
        assert_eq!(
            Root::decode(&r.encode(), "r").unwrap_err().code,
            codes::UNSUPPORTED
        );
        let mut r = sample_root();
        r.file_size = 1 << 40;
        r.block_size = 512;
        assert_eq!(
            Root::decode(&r.encode(), "r").unwrap_err().code,
            codes::CORRUPT_OBJECT
        );
        for (block, seg) in [(0, 1024), (4096, 0), (2u64 << 30, 1024), (4096, 1 << 20)] {
            let mut r = sample_root();
            r.block_size = block;
            r.segment_len = seg;
            assert!(Root::decode(&r.encode(), "r").is_err(), "{block}/{seg}");
        }
        // A tombstone keeps its sizes but needs no map.
        let t = sample_root().tombstone();
        assert!(Root::decode(&t.encode(), "t").unwrap().is_pruned());
    }

    #[test]
    fn sealed_roots_round_trip_and_refuse_a_changed_header_or_a_missing_key() {
        let keys = Keyring::new("k", &[4; 32], &[]).unwrap();
        let root = Root {
            db_id: [6; 16],
            flags: FLAG_SEALED | FLAG_CODECS,
            ..sample_root()
        };
        let bytes = root.encode_for(Some(&keys)).unwrap();
        assert_eq!(Root::decode_with(&bytes, "r", Some(&keys)).unwrap(), root);
        assert_eq!(root_identity(&bytes[..32]), Some(([3; 16], 9)));
        assert!(
            !bytes.windows(100).any(|w| w == &[1u8; 100][..]),
            "block 0 is not in the clear"
        );
        assert_eq!(
            Root::decode_with(&bytes, "r", None).unwrap_err().code,
            codes::KEY_MISSING
        );
        // Any header byte (version, parent, flags, database id) is authenticated.
        for at in [24, 32, 44, 59] {
            let mut bad = bytes.to_vec();
            bad[at] ^= 1;
            let code = Root::decode_with(&bad, "r", Some(&keys)).unwrap_err().code;
            assert!(
                code == codes::AUTHENTICATION_FAILED || code == codes::CORRUPT_OBJECT,
                "{at}: {code}"
            );
        }
        // A plain root where a sealed one is expected; its tombstone is plain and accepted.
        let plain = sample_root().encode();
        assert_eq!(
            Root::decode_with(&plain, "r", Some(&keys))
                .unwrap_err()
                .code,
            codes::NOT_ENCRYPTED
        );
        let t = root.tombstone().encode();
        assert!(Root::decode_with(&t, "t", Some(&keys)).unwrap().is_pruned());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn any_bytes_decode_to_a_root_or_an_error(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = Root::decode(&bytes, "r");
            let _ = Root::decode(&resealed(bytes.clone()), "r");
            let _ = decode_segment(&bytes, "s");
            let _ = decode_segment(&resealed(bytes.clone()), "s");
            let _ = root_identity(&bytes);
        }

        #[test]
        fn mutated_roots_decode_to_a_valid_root_or_an_error(
            at in 0usize..400,
            value in proptest::prelude::any::<u8>(),
            cut in 0usize..8,
        ) {
            let mut body = sample_root().encode().to_vec();
            let at = at % body.len();
            body[at] = value;
            body.truncate(body.len() - cut);
            if let Ok(root) = Root::decode(&resealed(body), "r") {
                // What decodes is usable: its map covers its file, its sizes are in range.
                proptest::prop_assert!(root.validate("r").is_ok());
                let count = root.file_size.div_ceil(root.block_size);
                if let MapRef::Inline(e) = &root.map {
                    proptest::prop_assert!(root.is_pruned() || e.len() as u64 >= count);
                }
            }
        }

        #[test]
        fn mutated_segments_decode_to_entries_or_an_error(
            n in 0usize..50,
            at in 0usize..2000,
            value in proptest::prelude::any::<u8>(),
        ) {
            let entries: Vec<Pointer> = (0..n as u64).map(pointer).collect();
            let mut body = encode_segment(&entries, n % 2 == 0).to_vec();
            let at = at % body.len();
            body[at] = value;
            if let Ok(decoded) = decode_segment(&resealed(body), "s") {
                proptest::prop_assert!(decoded.len() <= n + 1);
            }
        }
    }
}
