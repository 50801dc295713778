//! One suite every store passes (the in-memory store, the directory store, and the S3 store
//! against the local test server): missing keys, round trips and ETags, ranges, create-only and
//! conditional writes, listing order, prefixes and paging.

use super::{GetOptions, GetOutcome, ObjectStore, PutMode};
use bytes::Bytes;

fn body(o: GetOutcome) -> Bytes {
    match o {
        GetOutcome::Found(obj) => obj.body,
        other => panic!("expected an object, got {other:?}"),
    }
}

/// `exact_pages`: a page that ends at the last key must say so (our own stores do; an S3 server
/// may instead answer one more, empty, page).
pub async fn conformance(store: &dyn ObjectStore, exact_pages: bool) {
    let get = |k: &'static str| store.get(k, GetOptions::default());
    // Missing keys.
    assert!(matches!(
        get("p/missing").await.unwrap(),
        GetOutcome::NotFound
    ));
    assert!(store.head("p/missing").await.unwrap().is_none());
    store.delete("p/missing").await.unwrap();

    // Round trip, ETag, If-None-Match.
    let etag = store
        .put(
            "p/a",
            Bytes::from_static(b"hello world"),
            PutMode::Overwrite,
        )
        .await
        .unwrap()
        .expect("a put returns the ETag");
    let GetOutcome::Found(obj) = get("p/a").await.unwrap() else {
        panic!("p/a")
    };
    assert_eq!(&obj.body[..], b"hello world");
    assert_eq!(obj.etag.as_deref(), Some(etag.as_str()));
    assert!(obj.last_modified_ms.is_some());
    let not_modified = store
        .get(
            "p/a",
            GetOptions {
                range: None,
                if_none_match: Some(etag.clone()),
            },
        )
        .await
        .unwrap();
    assert!(matches!(not_modified, GetOutcome::NotModified));
    let meta = store.head("p/a").await.unwrap().unwrap();
    assert_eq!((meta.key.as_str(), meta.size), ("p/a", 11));

    // Ranges: end exclusive, clamped to the object.
    let range = |r: (u64, u64)| {
        store.get(
            "p/a",
            GetOptions {
                range: Some(r),
                if_none_match: None,
            },
        )
    };
    assert_eq!(&body(range((0, 5)).await.unwrap())[..], b"hello");
    assert_eq!(&body(range((6, 100)).await.unwrap())[..], b"world");
    assert!(body(range((20, 30)).await.unwrap()).is_empty());
    assert!(body(range((4, 4)).await.unwrap()).is_empty());

    // Create-only and conditional writes.
    store
        .put("p/c", Bytes::from_static(b"1"), PutMode::Create)
        .await
        .unwrap();
    let again = store
        .put("p/c", Bytes::from_static(b"2"), PutMode::Create)
        .await
        .unwrap_err();
    assert!(again.is_conflict(), "{again}");
    assert_eq!(&body(get("p/c").await.unwrap())[..], b"1");
    let e1 = store
        .put("p/u", Bytes::from_static(b"1"), PutMode::Overwrite)
        .await
        .unwrap()
        .unwrap();
    let e2 = store
        .put("p/u", Bytes::from_static(b"2"), PutMode::Update(e1.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(e1, e2);
    let stale = store
        .put("p/u", Bytes::from_static(b"3"), PutMode::Update(e1))
        .await
        .unwrap_err();
    assert!(stale.is_conflict());
    let absent = store
        .put("p/none", Bytes::from_static(b"3"), PutMode::Update(e2))
        .await
        .unwrap_err();
    assert!(absent.is_conflict());
    assert_eq!(&body(get("p/u").await.unwrap())[..], b"2");
    store
        .put("p/u", Bytes::from_static(b"4"), PutMode::Rewrite)
        .await
        .unwrap();
    assert_eq!(&body(get("p/u").await.unwrap())[..], b"4");

    // Listing: byte order, prefixes that are not folders, a folder marker, paging.
    let keys = [
        "q/",
        "q/!r/0001",
        "q/.b/000/x-1",
        "q/a",
        "q/a b",
        "q/a/",
        "q/a/b",
        "q/ab",
        "q/z",
        "q/\u{fc}",
        "qq",
    ];
    for k in keys {
        store
            .put(k, Bytes::from(k.as_bytes().to_vec()), PutMode::Overwrite)
            .await
            .unwrap();
    }
    let all: Vec<String> = super::list_all(store, "q/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut want: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("q/"))
        .map(|k| k.to_string())
        .collect();
    want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(all, want);
    let under: Vec<String> = super::list_all(store, "q/a")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(under, ["q/a", "q/a b", "q/a/", "q/a/b", "q/ab"]);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("q/", after.as_deref(), Some(3)).await.unwrap();
        assert!(page.objects.len() <= 3);
        paged.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, want);
    // A page that ends exactly at the last key says there is no next one, or (gofakes3 does:
    // S3 allows it) its next page is empty and says so.
    let exact = store.list("q/a/", None, Some(2)).await.unwrap();
    assert_eq!(exact.objects.len(), 2);
    assert!(!exact_pages || exact.next_start_after.is_none());
    if let Some(next) = exact.next_start_after {
        let rest = store.list("q/a/", Some(&next), Some(2)).await.unwrap();
        assert_eq!((rest.objects.len(), rest.next_start_after), (0, None));
    }
    store.delete("q/a").await.unwrap();
    assert!(super::list_all(store, "q/a")
        .await
        .unwrap()
        .iter()
        .all(|o| o.key != "q/a"));
    assert!(
        store.head("q/a/b").await.unwrap().is_some(),
        "a sibling folder's object stays"
    );
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_memory_store_conforms() {
    rt().block_on(conformance(&super::memory::MemoryStore::new(), true));
}

#[test]
fn the_directory_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = super::dir::DirStore::open(dir.path(), "bucket").unwrap();
    rt().block_on(conformance(&store, true));
}

/// Needs the S3 server `scripts/with-s3.ts` starts (`npm test` runs it with `--include-ignored`).
#[test]
#[ignore = "needs an S3 server: npm test runs it under scripts/with-s3.ts"]
fn the_s3_store_conforms() {
    let endpoint = std::env::var("SQLITE_S3VFS_TEST_ENDPOINT")
        .expect("SQLITE_S3VFS_TEST_ENDPOINT is not set: run under scripts/with-s3.ts");
    let bucket = format!(
        "conformance-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    rt().block_on(async {
        let config = super::s3::S3Config {
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let store = super::s3::S3Store::connect(&bucket, &config).await.unwrap();
        store.create_bucket().await.unwrap();
        conformance(&store, false).await;
    });
}

#[test]
fn the_directory_store_creates_atomically_across_threads() {
    // 16 writers race to create each of 20 keys: exactly one wins each.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let wins: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|w| {
                let path = path.clone();
                s.spawn(move || {
                    let store = super::dir::DirStore::open(&path, "b").unwrap();
                    rt().block_on(async {
                        let mut won = 0;
                        for k in 0..20 {
                            let r = store
                                .put(
                                    &format!("p/k{k}"),
                                    Bytes::from(format!("{w}")),
                                    PutMode::Create,
                                )
                                .await;
                            match r {
                                Ok(_) => won += 1,
                                Err(e) => assert!(e.is_conflict(), "{e}"),
                            }
                        }
                        won
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 20);
}
