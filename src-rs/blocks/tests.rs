use super::*;
use crate::store::memory::MemoryStore;
use crate::store::{list_all, ObjectStore};

fn file(store: &Arc<MemoryStore>, block_size: u64, stored_size: u64) -> BlockFile {
    BlockFile::new(
        store.clone(),
        Arc::new(Stats::default()),
        Naming::Compat(BlockKeys::new("db")),
        stored_size,
        BlockFileOptions {
            block_size,
            cache_bytes: 1 << 20,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last: Some(0),
        },
    )
}

fn sizes(store: &MemoryStore) -> Vec<(String, u64)> {
    crate::runtime::block_on(list_all(store, "db/"))
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn writes_are_buffered_until_flush_then_stored_without_holes() {
    let store = Arc::new(MemoryStore::new());
    let mut f = file(&store, 4097, 0);
    f.write(0, &pattern(4096, 1)).unwrap();
    f.write(3 * 4096, &pattern(4096, 2)).unwrap();
    assert!(store.keys().is_empty(), "nothing is uploaded before flush");
    f.flush().unwrap();
    // 16384 bytes in blocks of 4097: three full blocks and a last one of 4093 bytes.
    assert_eq!(
        sizes(&store),
        vec![
            ("db/0000000000".into(), 4097),
            ("db/0000000001".into(), 4097),
            ("db/0000000002".into(), 4097),
            ("db/0000000003".into(), 4093)
        ]
    );
    let mut g = file(&store, 4097, 16384);
    let mut buf = vec![0u8; 4096];
    g.read(3 * 4096, &mut buf).unwrap();
    assert_eq!(buf, pattern(4096, 2));
    g.read(4096, &mut buf).unwrap();
    assert_eq!(buf, vec![0u8; 4096], "the gap reads as zeros");
}

#[test]
fn reads_see_buffered_writes_and_short_reads_report_the_length() {
    let store = Arc::new(MemoryStore::new());
    let mut f = file(&store, 4095, 0);
    f.write(0, &pattern(8192, 3)).unwrap();
    let mut buf = vec![9u8; 100];
    assert_eq!(f.read(8150, &mut buf).unwrap(), 42);
    assert_eq!(&buf[..42], &pattern(8192, 3)[8150..]);
}

#[test]
fn truncate_shrinks_objects_and_deletes_the_tail() {
    let store = Arc::new(MemoryStore::new());
    let mut f = file(&store, 4096, 0);
    f.write(0, &pattern(5 * 4096, 4)).unwrap();
    f.flush().unwrap();
    let mut f = file(&store, 4096, 5 * 4096);
    f.truncate(2 * 4096 + 100).unwrap();
    f.flush().unwrap();
    assert_eq!(
        sizes(&store),
        vec![
            ("db/0000000000".into(), 4096),
            ("db/0000000001".into(), 4096),
            ("db/0000000002".into(), 100)
        ]
    );
    // Growing again reads zeros where the old content was.
    f.write(3 * 4096, &[7u8; 10]).unwrap();
    let mut buf = vec![1u8; 200];
    f.read(2 * 4096, &mut buf).unwrap();
    assert_eq!(&buf[..100], &pattern(5 * 4096, 4)[2 * 4096..2 * 4096 + 100]);
    assert!(buf[100..].iter().all(|b| *b == 0));
}

#[test]
fn discard_drops_unflushed_writes() {
    let store = Arc::new(MemoryStore::new());
    let mut f = file(&store, 4096, 0);
    f.write(0, &pattern(4096, 5)).unwrap();
    f.flush().unwrap();
    f.write(0, &pattern(4096, 6)).unwrap();
    f.discard();
    let mut buf = vec![0u8; 4096];
    f.read(0, &mut buf).unwrap();
    assert_eq!(buf, pattern(4096, 5));
}

#[test]
fn a_block_is_fetched_once_for_many_page_reads() {
    let store = Arc::new(MemoryStore::new());
    let mut f = file(&store, 65536, 0);
    f.write(0, &pattern(65536, 7)).unwrap();
    f.flush().unwrap();
    let counted: Arc<dyn ObjectStore> = Arc::new(crate::store::CountingStore::new(
        store.clone(),
        Arc::new(Stats::default()),
    ));
    let stats = Arc::new(Stats::default());
    let mut g = BlockFile::new(
        Arc::new(crate::store::CountingStore::new(counted, stats.clone())),
        stats.clone(),
        Naming::Compat(BlockKeys::new("db")),
        65536,
        BlockFileOptions {
            block_size: 65536,
            cache_bytes: 1 << 20,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last: Some(0),
        },
    );
    let mut page = vec![0u8; 4096];
    for p in 0..16 {
        g.read(p * 4096, &mut page).unwrap();
    }
    assert_eq!(stats.snapshot().get, 1);
}

/// A file of `blocks` blocks of 4096 bytes, stored, whose cache holds `cache_blocks` of them.
fn stored_file(store: &Arc<MemoryStore>, blocks: u64, cache_blocks: usize) -> BlockFile {
    let mut w = file(store, 4096, 0);
    for i in 0..blocks {
        w.write(i * 4096, &pattern(4096, i as u8)).unwrap();
    }
    w.flush().unwrap();
    BlockFile::new(
        store.clone(),
        Arc::new(Stats::default()),
        Naming::Compat(BlockKeys::new("db")),
        blocks * 4096,
        BlockFileOptions {
            block_size: 4096,
            cache_bytes: cache_blocks * 4096,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last: Some(0),
        },
    )
}

#[test]
fn a_read_spanning_more_blocks_than_the_cache_keeps_never_zero_fills_the_cached_ones() {
    // Review #4: pages of 16 blocks, a cache of 17. Reading A, B, A: the second read of A finds
    // its first block cached, then the fetch of the rest evicts it before it is copied.
    let store = Arc::new(MemoryStore::new());
    let mut f = stored_file(&store, 64, 17);
    let want = |first: u64| -> Vec<u8> {
        (first..first + 16)
            .flat_map(|i| pattern(4096, i as u8))
            .collect()
    };
    let mut buf = vec![0u8; 16 * 4096];
    for first in [0, 32, 0, 32, 16, 0, 48, 0] {
        f.read(first * 4096, &mut buf).unwrap();
        assert!(
            buf == want(first),
            "read of blocks {first}..{} differs",
            first + 15
        );
    }
}

#[test]
fn a_write_under_cache_pressure_keeps_the_old_bytes_of_its_edge_blocks() {
    // A write covering parts of two blocks, one cached and one not, with a cache of one block:
    // the fetch of one edge must not evict the other before its old bytes are kept.
    let store = Arc::new(MemoryStore::new());
    let mut f = stored_file(&store, 8, 1);
    let mut buf = vec![0u8; 100];
    f.read(2 * 4096, &mut buf).unwrap(); // block 2 cached
    f.write(2 * 4096 + 4000, &[0xee; 200]).unwrap(); // blocks 2 and 3, partly
    f.flush().unwrap();
    let mut g = stored_file(&store, 0, 64);
    g.size = 8 * 4096;
    g.stored_size = 8 * 4096;
    let mut all = vec![0u8; 8 * 4096];
    g.read(0, &mut all).unwrap();
    let mut want: Vec<u8> = (0..8).flat_map(|i| pattern(4096, i as u8)).collect();
    want[2 * 4096 + 4000..2 * 4096 + 4200].fill(0xee);
    assert!(all == want, "the edge blocks lost their old bytes");
}
