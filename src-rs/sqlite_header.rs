//! What we read from an SQLite database header (the first 100 bytes of page 1).
//! <https://www.sqlite.org/fileformat.html#the_database_header>

pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";
pub const HEADER_LEN: usize = 100;

pub fn has_magic(header: &[u8]) -> bool {
    header.len() >= MAGIC.len() && &header[..MAGIC.len()] == MAGIC
}

/// The page size (bytes 16..18, big-endian; 1 means 65536), if valid.
pub fn page_size(header: &[u8]) -> Option<u32> {
    if header.len() < 18 {
        return None;
    }
    let raw = u16::from_be_bytes([header[16], header[17]]) as u32;
    let size = if raw == 1 { 65536 } else { raw };
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The database's size in pages (bytes 28..32), trusted only when the change counter
/// (24..28) equals the version-valid-for number (92..96), as SQLite itself requires.
pub fn page_count(header: &[u8]) -> Option<u32> {
    if header.len() < HEADER_LEN || !has_magic(header) {
        return None;
    }
    let valid = be32(header, 24) == be32(header, 92);
    let count = be32(header, 28);
    (valid && count > 0).then_some(count)
}

/// The file size the header promises: page count x page size.
pub fn file_size(header: &[u8]) -> Option<u64> {
    Some(page_count(header)? as u64 * page_size(header)? as u64)
}

/// Bytes 18 and 19 are 2 in a WAL-mode database, which needs shared memory we cannot offer.
pub fn is_wal(header: &[u8]) -> bool {
    header.len() >= 20 && (header[18] == 2 || header[19] == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(page_size_field: u16, pages: u32, counter: u32, valid_for: u32) -> Vec<u8> {
        let mut h = vec![0u8; 100];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&page_size_field.to_be_bytes());
        h[24..28].copy_from_slice(&counter.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[92..96].copy_from_slice(&valid_for.to_be_bytes());
        h
    }

    #[test]
    fn size_from_a_valid_header() {
        assert_eq!(file_size(&header(4096, 3, 7, 7)), Some(3 * 4096));
        assert_eq!(file_size(&header(1, 2, 7, 7)), Some(2 * 65536));
    }

    #[test]
    fn no_size_when_the_count_is_stale_or_the_page_size_invalid() {
        assert_eq!(file_size(&header(4096, 3, 8, 7)), None);
        assert_eq!(file_size(&header(1000, 3, 7, 7)), None);
        assert_eq!(file_size(&header(256, 3, 7, 7)), None);
        assert_eq!(file_size(b"not a database"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_header_bytes_give_a_valid_size_or_none(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            if let Some(p) = page_size(&bytes) {
                proptest::prop_assert!(p.is_power_of_two() && (512..=65536).contains(&p));
            }
            if let Some(size) = file_size(&bytes) {
                proptest::prop_assert!(size > 0 && size <= (u32::MAX as u64) * 65536);
            }
            let _ = is_wal(&bytes);
            let _ = has_magic(&bytes);
        }
    }
}
