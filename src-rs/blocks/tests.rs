use super::*;
use crate::layout::versioned::Names;
use crate::store::memory::MemoryStore;
use crate::store::{list_all, ObjectStore};

fn compat_map() -> CompatMap {
    CompatMap::new(BlockKeys::new("db"))
}

/// The versioned layout's naming, no version yet.
fn versioned_map() -> VersionedMap {
    VersionedMap::new(Names::new("db"), None, None, [0; 16])
}

fn file(store: &Arc<MemoryStore>, block_size: u64, stored_size: u64) -> BlockFile<CompatMap> {
    BlockFile::new(
        store.clone(),
        Arc::new(Stats::default()),
        compat_map(),
        stored_size,
        BlockFileOptions {
            block_size,
            cache_bytes: 1 << 20,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last: Some(0),
            budget: Arc::new(MemoryBudget::unlimited()),
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
        compat_map(),
        65536,
        BlockFileOptions {
            block_size: 65536,
            cache_bytes: 1 << 20,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last: Some(0),
            budget: Arc::new(MemoryBudget::unlimited()),
        },
    );
    let mut page = vec![0u8; 4096];
    for p in 0..16 {
        g.read(p * 4096, &mut page).unwrap();
    }
    assert_eq!(stats.snapshot().get, 1);
}

/// A file of `blocks` blocks of 4096 bytes, stored, whose cache holds `cache_blocks` of them.
fn stored_file(store: &Arc<MemoryStore>, blocks: u64, cache_blocks: usize) -> BlockFile<CompatMap> {
    let mut w = file(store, 4096, 0);
    for i in 0..blocks {
        w.write(i * 4096, &pattern(4096, i as u8)).unwrap();
    }
    w.flush().unwrap();
    BlockFile::new(
        store.clone(),
        Arc::new(Stats::default()),
        compat_map(),
        blocks * 4096,
        BlockFileOptions {
            block_size: 4096,
            cache_bytes: cache_blocks * 4096,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last: Some(0),
            budget: Arc::new(MemoryBudget::unlimited()),
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

/// A file whose buffer may hold `limit` bytes in memory.
fn limited<M: BlockMap>(
    store: &Arc<MemoryStore>,
    block_size: u64,
    limit: usize,
    map: M,
) -> (BlockFile<M>, Arc<MemoryBudget>) {
    let budget = Arc::new(MemoryBudget::new(limit, Arc::default()));
    // A file rewritten in place uploads block 0 last.
    let upload_last = map.early().is_none().then_some(0);
    let f = BlockFile::new(
        store.clone(),
        Arc::new(Stats::default()),
        map,
        0,
        BlockFileOptions {
            block_size,
            cache_bytes: 2 * block_size as usize,
            concurrency: 4,
            read_ahead: 0,
            disk: None,
            upload_last,
            budget: budget.clone(),
        },
    );
    (f, budget)
}

#[derive(Debug, Clone)]
enum FileOp {
    Write(u64, usize, u8),
    Truncate(u64),
    Read(u64, usize),
    Flush,
}

fn file_op(max: u64) -> impl proptest::strategy::Strategy<Value = FileOp> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (0..max, 1..3000usize, any::<u8>()).prop_map(|(o, l, s)| FileOp::Write(o, l, s)),
        1 => (0..max).prop_map(FileOp::Truncate),
        3 => (0..max, 1..3000usize).prop_map(|(o, l)| FileOp::Read(o, l)),
        1 => Just(FileOp::Flush),
    ]
}

/// Runs `ops` on `f` (a budget of 3 blocks of 1 KiB) and on a plain vector, checking every
/// read and the budget after every write; returns the vector. `flush` is the layout's.
fn run_ops<M: BlockMap>(
    f: &mut BlockFile<M>,
    budget: &MemoryBudget,
    ops: &[FileOp],
    flush: fn(&mut BlockFile<M>) -> Result<()>,
) -> std::result::Result<Vec<u8>, String> {
    let bs = 1024u64;
    let limit = 3 * bs as usize;
    let mut want: Vec<u8> = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        match op.clone() {
            FileOp::Write(at, len, seed) => {
                let data = pattern(len, seed);
                f.write(at, &data)
                    .map_err(|e| format!("op {n} {op:?}: {e}"))?;
                let end = at as usize + len;
                if want.len() < end {
                    want.resize(end, 0);
                }
                want[at as usize..end].copy_from_slice(&data);
                // One write may add up to 4 blocks (3000 bytes over block edges); all but the
                // last one written leave memory again.
                if budget.used() > limit + bs as usize {
                    return Err(format!(
                        "op {n}: {} bytes buffered in memory",
                        budget.used()
                    ));
                }
            }
            FileOp::Truncate(size) => {
                f.truncate(size)
                    .map_err(|e| format!("op {n} {op:?}: {e}"))?;
                want.resize(size as usize, 0);
            }
            FileOp::Read(at, len) => {
                let mut buf = vec![0xa5u8; len];
                let got = f
                    .read(at, &mut buf)
                    .map_err(|e| format!("op {n} {op:?}: {e}"))?;
                let from = (at as usize).min(want.len());
                let to = (at as usize + len).min(want.len());
                if got != to - from || buf[..got] != want[from..to] {
                    return Err(format!("op {n} {op:?}: read differs"));
                }
            }
            FileOp::Flush => flush(f).map_err(|e| format!("op {n}: {e}"))?,
        }
        if f.size() != want.len() as u64 {
            return Err(format!(
                "op {n} {op:?}: size {} != {}",
                f.size(),
                want.len()
            ));
        }
    }
    Ok(want)
}

/// `run_ops` in either layout, then a check of what the file finally holds.
fn against_oracle(ops: &[FileOp], versioned: bool) -> std::result::Result<(), String> {
    let bs = 1024u64;
    let limit = 3 * bs as usize;
    let store = Arc::new(MemoryStore::new());
    if versioned {
        let (mut f, budget) = limited(&store, bs, limit, versioned_map());
        // Versioned files publish instead of flushing.
        let want = run_ops(&mut f, &budget, ops, |_| Ok(()))?;
        // What a publish would reference: every block, in memory or in the store, is right.
        let changes = f.changes().map_err(|e| e.to_string())?;
        let mut blocks: Vec<(u64, Vec<u8>)> = changes
            .blocks
            .into_iter()
            .map(|(i, b)| (i, b.to_vec()))
            .collect();
        for (i, p) in changes.uploaded {
            let key = Names::new("db").block(i, &p);
            let GetOutcome::Found(obj) =
                crate::runtime::block_on(store.get(&key, GetOptions::default())).unwrap()
            else {
                return Err(format!("block {i} uploaded early is missing"));
            };
            if crc32c::crc32c(&obj.body) != p.crc {
                return Err(format!("block {i}: the pointer's CRC does not match"));
            }
            blocks.push((i, obj.body.to_vec()));
        }
        for (i, b) in blocks {
            let lo = (i * bs) as usize;
            let hi = (lo + bs as usize).min(want.len());
            if b != want[lo..hi] {
                return Err(format!("block {i} differs"));
            }
        }
    } else {
        let (mut f, budget) = limited(&store, bs, limit, compat_map());
        let want = run_ops(&mut f, &budget, ops, |f| f.flush())?;
        f.flush().map_err(|e| e.to_string())?;
        let mut g = file(&store, bs, want.len() as u64);
        let mut all = vec![0u8; want.len()];
        g.read(0, &mut all).map_err(|e| e.to_string())?;
        if all != want {
            return Err("the stored file differs".into());
        }
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn a_spilling_buffer_reads_and_flushes_like_memory(
        ops in proptest::collection::vec(file_op(24 * 1024), 1..60)
    ) {
        if let Err(e) = against_oracle(&ops, false) {
            proptest::prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn blocks_uploaded_early_read_and_publish_like_memory(
        ops in proptest::collection::vec(file_op(24 * 1024), 1..60)
    ) {
        if let Err(e) = against_oracle(&ops, true) {
            proptest::prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn a_sequential_writer_keeps_memory_bounded_and_uploads_early() {
    let store = Arc::new(MemoryStore::new());
    let (mut f, budget) = limited(&store, 1024, 4096, versioned_map());
    for i in 0..64u64 {
        f.write(i * 1024, &pattern(1024, i as u8)).unwrap();
        assert!(budget.used() <= 4096 + 1024, "{} buffered", budget.used());
    }
    let changes = f.changes().unwrap();
    assert!(changes.uploaded.len() >= 56, "{}", changes.uploaded.len());
    assert_eq!(changes.blocks.len() + changes.uploaded.len(), 64);
    // Every early block is in the store under the same attempt, and no root exists.
    let keys = store.keys();
    assert!(keys.iter().all(|k| k.starts_with("db/.b/")), "{keys:?}");
    let attempts: std::collections::HashSet<_> = keys
        .iter()
        .map(|k| Names::new("db").parse_block(k).unwrap().attempt)
        .collect();
    assert_eq!(attempts.len(), 1);
    // A discard (rollback) forgets them: the next buffer starts a new attempt.
    f.discard();
    assert_eq!(budget.used(), 0);
    assert!(f.changes().unwrap().uploaded.is_empty());
}

#[test]
fn an_attempt_idle_past_the_base_age_is_copied_to_a_fresh_one_or_expires() {
    let store = Arc::new(MemoryStore::new());
    let (mut f, _) = limited(&store, 1024, 2048, versioned_map());
    for i in 0..8u64 {
        f.write(i * 1024, &pattern(1024, i as u8)).unwrap();
    }
    let before = f.changes().unwrap().uploaded;
    assert!(!before.is_empty());
    f.age_early_attempt(MAX_BASE_AGE * 2);
    f.renew_stale_attempt().unwrap();
    let after = f.changes().unwrap().uploaded;
    assert_eq!(before.len(), after.len());
    for ((i, old), (j, new)) in before.iter().zip(&after) {
        assert_eq!(i, j);
        assert_ne!(old.attempt, new.attempt, "block {i} kept its stale attempt");
        assert_eq!(old.crc, new.crc);
    }
    let mut all = vec![0u8; 8 * 1024];
    f.read(0, &mut all).unwrap();
    assert!(
        all == (0..8)
            .flat_map(|i| pattern(1024, i as u8))
            .collect::<Vec<_>>()
    );
    // Collected meanwhile (GC ran past its grace period): the transaction cannot commit.
    for k in store.keys() {
        crate::runtime::block_on(store.delete(&k)).unwrap();
    }
    f.age_early_attempt(MAX_BASE_AGE * 2);
    let e = f.renew_stale_attempt().unwrap_err();
    assert_eq!(e.code, codes::TRANSACTION_EXPIRED);
}

#[test]
fn a_save_point_restored_after_a_renewal_never_publishes_the_old_attempt() {
    // Red team #1: BEGIN_ATOMIC saves blocks uploaded early under attempt A1; the publish renews
    // A1 (stale) to A2 and fails; ROLLBACK_ATOMIC restores the A1 keys. The next publish must
    // reference A2's (or a newer) copies, never A1's, which nothing keeps alive any more.
    let store = Arc::new(MemoryStore::new());
    let (mut f, _) = limited(&store, 1024, 2048, versioned_map());
    for i in 0..8u64 {
        f.write(i * 1024, &pattern(1024, i as u8)).unwrap();
    }
    let saved = f.save_point();
    let a1 = f.changes().unwrap().uploaded[0].1.attempt;
    f.age_early_attempt(MAX_BASE_AGE * 2);
    f.renew_stale_attempt().unwrap();
    f.restore(saved);
    // Without a renewal, the buffer's A1 pointers are not publishable.
    assert!(f.changes().is_err());
    f.renew_stale_attempt().unwrap();
    let changes = f.changes().unwrap();
    assert!(!changes.uploaded.is_empty());
    assert!(changes.uploaded.iter().all(|(_, p)| p.attempt != a1));
    // A discard forgets the attempt; a save point from before it brings back blocks of no
    // current attempt: renewed too.
    let saved = f.save_point();
    f.discard();
    f.restore(saved);
    f.renew_stale_attempt().unwrap();
    let mut all = vec![0u8; 8 * 1024];
    f.read(0, &mut all).unwrap();
    assert!(
        all == (0..8)
            .flat_map(|i| pattern(1024, i as u8))
            .collect::<Vec<_>>()
    );
    assert!(f.changes().is_ok());
}

#[test]
fn reading_an_early_block_that_gc_took_says_the_transaction_expired() {
    let store = Arc::new(MemoryStore::new());
    let (mut f, _) = limited(&store, 1024, 2048, versioned_map());
    for i in 0..8u64 {
        f.write(i * 1024, &pattern(1024, i as u8)).unwrap();
    }
    for k in store.keys() {
        crate::runtime::block_on(store.delete(&k)).unwrap();
    }
    // Not cached (the cache holds 2 blocks): read from the store.
    let mut buf = vec![0u8; 1024];
    let e = f.read(1024, &mut buf).unwrap_err();
    assert_eq!(e.code, codes::TRANSACTION_EXPIRED, "{e}");
}
