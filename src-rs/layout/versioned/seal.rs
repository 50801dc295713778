//! Client-side encryption of the versioned layout (`options.encryption`): every block object, map
//! segment and root is sealed with XChaCha20-Poly1305 (RustCrypto) under a key the bucket never
//! sees. The associated data is the object's identity — the database's id, what the object is
//! (block i, segment s, root), and the version, attempt and upload number that name it — so an
//! object moved to another place, another database or another version fails to open, and so
//! does a root copied over a newer version's key.
//!
//! A sealed object is `key id length (u8) | key id | nonce (24) | ciphertext and tag`. Nonces are
//! random (24 bytes: no counter to share between processes); the key id says which key of the
//! keyring opens it, so keys can be rotated: new objects are sealed with the current key, old
//! ones open while their key is offered.
//!
//! What the bucket's owner still sees: how many objects there are, their sizes (a block's size
//! says how well it compressed), when each was written, the version numbers, the key ids, and
//! which blocks each commit changed. What they cannot do undetected: read a page, change one,
//! move or swap objects, or put a root under another version's key. They can still delete
//! objects (the database then fails to open, `ERR_VERSION_GONE`), delete the newest roots (readers
//! then see an older version), and, because a root does not name its parent, swap in another
//! authentic root for a version they deleted (a writer's, made after the deletion) or another
//! database sealed under the same key.

use super::format::Pointer;
use crate::error::{codes, Error, Result};
use bytes::Bytes;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// The longest key id (it is stored in every sealed object).
pub const MAX_KEY_ID_LEN: usize = 64;

/// A database's id: random, made when its first sealed version is, kept by every later one.
pub type DatabaseId = [u8; 16];

/// The keys a database may be opened with: the current one seals, any of them opens. Key bytes
/// are wiped when the keyring is dropped (the database closed).
pub struct Keyring {
    current: String,
    keys: RwLock<HashMap<String, Arc<Zeroizing<[u8; KEY_LEN]>>>>,
    /// Asked for a key the keyring does not hold yet (`options.encryption.keyProvider`); what it
    /// gives is kept until the keyring is dropped.
    provider: Option<Box<dyn KeyProvider>>,
    /// Ids the provider said it has no key for: kept too, so a scan of blocks under such a key
    /// asks once, not once per block. (A provider's error is not kept: the next read asks again.)
    unknown: RwLock<HashSet<String>>,
    /// Questions to the provider under way, by key id: whoever needs a key being fetched waits
    /// for that answer (a key or an error), so a key is asked for once however many blocks
    /// need it at the same moment, and a failure is paid once.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
}

type Key = Arc<Zeroizing<[u8; KEY_LEN]>>;

/// One question to the provider, and its answer once there is one.
#[derive(Default)]
struct Flight {
    answer: Mutex<Option<Result<Key>>>,
    answered: Condvar,
}

impl Flight {
    fn wait(&self) -> Result<Key> {
        let mut answer = self.answer.lock().unwrap();
        loop {
            if let Some(a) = answer.as_ref() {
                return a.clone();
            }
            answer = self.answered.wait(answer).unwrap();
        }
    }

    fn answer(&self, a: Result<Key>) {
        let mut answer = self.answer.lock().unwrap();
        if answer.is_none() {
            *answer = Some(a);
        }
        self.answered.notify_all();
    }
}

/// Answers a flight whose asker left without an answer (a panic), so no one waits forever.
struct Answering<'a>(&'a Flight);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0
            .answer(Err(Error::internal("the key provider's caller stopped")));
    }
}

/// Where keys come from when they are not given up front: a KMS, a secrets manager. Key ids it
/// is asked for come from the bucket (every sealed object names its key), so they are untrusted
/// input; the answer is authenticated by opening the object with it.
pub trait KeyProvider: Send + Sync {
    /// The key named `id`, `Ok(None)` when there is none under that id. May block (it runs on a
    /// connection thread or in `block_in_place`, never on the JS thread).
    fn fetch(&self, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>>;
}

// Key ids only: never the keys.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().unwrap();
        let mut ids: Vec<&String> = keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("ids", &ids)
            .field("provider", &self.provider.is_some())
            .finish()
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_KEY_ID_LEN {
        return Err(Error::invalid(format!(
            "encryption key ids are 1 to {MAX_KEY_ID_LEN} bytes, got {}",
            id.len()
        )));
    }
    Ok(())
}

fn key_of(bytes: &[u8], id: &str) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        // The length only: never the bytes.
        return Err(Error::invalid(format!(
            "encryption key '{id}' must be {KEY_LEN} bytes, got {}",
            bytes.len()
        )));
    }
    key.copy_from_slice(bytes);
    Ok(key)
}

impl Keyring {
    /// `current` seals; `previous` (rotated-out keys, by id) only open.
    pub fn new(current_id: &str, current: &[u8], previous: &[(String, &[u8])]) -> Result<Keyring> {
        let ring = Keyring::with_provider(current_id, None, previous)?;
        ring.insert(current_id, current)?;
        Ok(ring)
    }

    /// A keyring whose keys (the current one too) come from `provider` when first needed, beside
    /// the `previous` ones given up front.
    pub fn with_provider(
        current_id: &str,
        provider: Option<Box<dyn KeyProvider>>,
        previous: &[(String, &[u8])],
    ) -> Result<Keyring> {
        check_id(current_id)?;
        let ring = Keyring {
            current: current_id.to_string(),
            keys: RwLock::new(HashMap::new()),
            provider,
            unknown: RwLock::new(HashSet::new()),
            flights: Mutex::new(HashMap::new()),
        };
        for (id, bytes) in previous {
            check_id(id)?;
            if id == current_id {
                // Two keys under one id: objects would fail to open as if tampered with.
                return Err(Error::invalid(format!(
                    "encryption.previousKeys holds the current key id '{id}': give a new key a new id"
                )));
            }
            ring.insert(id, bytes)?;
        }
        Ok(ring)
    }

    fn insert(&self, id: &str, bytes: &[u8]) -> Result<Key> {
        let key = Arc::new(key_of(bytes, id)?);
        self.keys
            .write()
            .unwrap()
            .insert(id.to_string(), key.clone());
        Ok(key)
    }

    /// The key named `id`: held, or fetched from the provider (once), or `ERR_KEY_MISSING`.
    /// `what` names the object that needs it, for the error.
    fn key(&self, what: &str, id: &str) -> Result<Key> {
        if let Some(key) = self.keys.read().unwrap().get(id) {
            return Ok(key.clone());
        }
        let Some(provider) = &self.provider else {
            return Err(key_missing(what, &tame(id)));
        };
        // Ids are written by whoever wrote the object: one with control characters or beyond
        // ASCII could not have been ours, and never reaches the provider.
        if check_id(id).is_err() || !id.chars().all(printable) {
            return Err(key_missing(what, &tame(id)));
        }
        let (flight, asker) = {
            let mut flights = self.flights.lock().unwrap();
            // Looked up again under the lock: an answer may have just come.
            if let Some(key) = self.keys.read().unwrap().get(id) {
                return Ok(key.clone());
            }
            if self.unknown.read().unwrap().contains(id) {
                return Err(key_missing(what, id));
            }
            match flights.get(id) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    flights.insert(id.to_string(), f.clone());
                    (f, true)
                }
            }
        };
        if !asker {
            // Waiting off the runtime's cores (in `block_in_place` on a worker), so the fetch
            // it waits for, and its timeout, keep running.
            return crate::runtime::blocking(|| flight.wait())?;
        }
        let answering = Answering(&flight);
        let answer = match provider.fetch(id) {
            Ok(Some(bytes)) => self.insert(id, &bytes).map_err(|e| {
                Error::new(
                    codes::KEY_PROVIDER,
                    format!("encryption.keyProvider('{id}'): {}", e.message),
                )
            }),
            Ok(None) => {
                self.unknown.write().unwrap().insert(id.to_string());
                Err(key_missing(what, id))
            }
            Err(e) => Err(e),
        };
        // Kept (above) before the flight ends: whoever comes after it finds the answer.
        flight.answer(answer.clone());
        drop(answering);
        self.flights.lock().unwrap().remove(id);
        answer
    }

    /// The key that seals new objects.
    fn current_key(&self) -> Result<Key> {
        self.key("the current key", &self.current).map_err(|e| {
            if e.code != codes::KEY_MISSING {
                return e;
            }
            Error::new(
                codes::KEY_MISSING,
                format!(
                    "the key '{}' that seals new objects (encryption.keyId) was not given: the key \
                     provider has none by that id",
                    tame(&self.current)
                ),
            )
        })
    }

    /// Makes sure the current key is at hand (fetching it from the provider if need be), so a
    /// database whose key cannot be had fails when it opens, not at its first write.
    pub fn ready(&self) -> Result<()> {
        self.current_key().map(|_| ())
    }

    /// Forgets the ids the provider had no key for (a new attempt to open the database: a key
    /// missing then may be there now).
    pub fn forget_unknown(&self) {
        self.unknown.write().unwrap().clear();
    }

    /// Seals `plain` with the current key, bound to `identity`.
    pub fn seal(&self, identity: &[u8], plain: &[u8]) -> Result<Bytes> {
        let key = self.current_key()?;
        let cipher = XChaCha20Poly1305::new(key_bytes(&key).into());
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| Error::internal(format!("no random nonce from the OS: {e}")))?;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: identity,
                },
            )
            .map_err(|_| Error::internal("encryption failed"))?;
        let id = self.current.as_bytes();
        let mut out = Vec::with_capacity(1 + id.len() + NONCE_LEN + sealed.len());
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(Bytes::from(out))
    }

    /// Opens what `seal` made for `identity`: an error (never other bytes) when it was changed,
    /// moved, or sealed for another identity; `ERR_KEY_MISSING` when its key is not offered.
    pub fn open(&self, what: &str, identity: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let (id, rest) = split_key_id(what, sealed)?;
        let key = self.key(what, id)?;
        if rest.len() < NONCE_LEN + 16 {
            return Err(tampered(what));
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        XChaCha20Poly1305::new(key_bytes(&key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: identity,
                },
            )
            .map_err(|_| tampered(what))
    }
}

fn key_bytes(key: &Key) -> &[u8; KEY_LEN] {
    key
}

/// The key id a sealed object names, and the rest of it.
fn split_key_id<'a>(what: &str, sealed: &'a [u8]) -> Result<(&'a str, &'a [u8])> {
    let n = *sealed.first().ok_or_else(|| tampered(what))? as usize;
    let id = sealed.get(1..1 + n).ok_or_else(|| tampered(what))?;
    let id = std::str::from_utf8(id).map_err(|_| tampered(what))?;
    Ok((id, &sealed[1 + n..]))
}

/// The key id a sealed object names (for an error that says which key to offer): printable
/// characters only, at most `MAX_KEY_ID_LEN` (the bucket's owner writes it).
pub fn key_id_of(sealed: &[u8]) -> Option<String> {
    split_key_id("", sealed).ok().map(|(id, _)| tame(id))
}

/// Whether a key id may hold `c` as we write them (and as they may be shown).
fn printable(c: char) -> bool {
    c.is_ascii_graphic() || c == ' '
}

/// A key id as it may be shown: printable characters only, at most `MAX_KEY_ID_LEN`.
fn tame(id: &str) -> String {
    id.chars()
        .take(MAX_KEY_ID_LEN)
        .map(|c| if printable(c) { c } else { '?' })
        .collect()
}

pub fn tampered(what: &str) -> Error {
    Error::new(
        codes::AUTHENTICATION_FAILED,
        format!(
            "{what}: the encrypted object does not authenticate: it was changed, moved or \
             replaced, or the key offered under its id is not the one it was sealed with"
        ),
    )
}

pub fn key_missing(what: &str, id: &str) -> Error {
    Error::new(
        codes::KEY_MISSING,
        format!("{what} is encrypted with key '{id}', which was not offered (options.encryption)"),
    )
}

/// Associated data: what the object is, in which database, under which name.
pub fn identity(kind: &[u8], db: &DatabaseId, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"sqlite-s3vfs ");
    out.extend_from_slice(kind);
    out.push(0);
    out.extend_from_slice(db);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The associated data of a block or map segment: its index, and the version, attempt and
/// upload number that name it.
pub fn object_identity(kind: &[u8], db: &DatabaseId, index: u64, p: &Pointer) -> Vec<u8> {
    identity(
        kind,
        db,
        &[
            &index.to_le_bytes(),
            &p.version.to_le_bytes(),
            &p.attempt,
            &p.seq.to_le_bytes(),
        ],
    )
}

/// A new database id.
pub fn new_database_id() -> Result<DatabaseId> {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id)
        .map_err(|e| Error::internal(format!("no random database id from the OS: {e}")))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str, byte: u8) -> Keyring {
        Keyring::new(id, &[byte; 32], &[]).unwrap()
    }

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_identity() {
        let k = ring("k1", 7);
        let db = [1u8; 16];
        let who = identity(b"block", &db, &[&5u64.to_le_bytes()]);
        let sealed = k.seal(&who, b"page bytes").unwrap();
        assert_eq!(k.open("o", &who, &sealed).unwrap(), b"page bytes");
        // Two seals of the same bytes differ (random nonces).
        assert_ne!(k.seal(&who, b"page bytes").unwrap(), sealed);
        // Another identity, a flipped byte anywhere, a cut: all refused.
        let other = identity(b"block", &db, &[&6u64.to_le_bytes()]);
        assert_eq!(
            k.open("o", &other, &sealed).unwrap_err().code,
            codes::AUTHENTICATION_FAILED
        );
        for at in 0..sealed.len() {
            let mut bad = sealed.to_vec();
            bad[at] ^= 0x40;
            assert!(k.open("o", &who, &bad).is_err(), "flip at {at}");
        }
        assert!(k.open("o", &who, &sealed[..sealed.len() - 1]).is_err());
        assert!(k.open("o", &who, &[]).is_err());
        // Another key under the same id: refused; an id not offered: ERR_KEY_MISSING.
        assert_eq!(
            ring("k1", 8).open("o", &who, &sealed).unwrap_err().code,
            codes::AUTHENTICATION_FAILED
        );
        let e = ring("k2", 7).open("o", &who, &sealed).unwrap_err();
        assert_eq!(e.code, codes::KEY_MISSING);
        assert!(e.message.contains("'k1'"));
        assert_eq!(key_id_of(&sealed).as_deref(), Some("k1"));
    }

    #[test]
    fn rotation_seals_with_the_new_key_and_opens_with_the_old() {
        let old = ring("2025", 1);
        let who = identity(b"segment", &[0; 16], &[]);
        let before = old.seal(&who, b"old").unwrap();
        let rotated = Keyring::new("2026", &[2; 32], &[("2025".into(), &[1; 32][..])]).unwrap();
        assert_eq!(rotated.open("o", &who, &before).unwrap(), b"old");
        let after = rotated.seal(&who, b"new").unwrap();
        assert_eq!(key_id_of(&after).as_deref(), Some("2026"));
        assert_eq!(
            ring("2025", 1).open("o", &who, &after).unwrap_err().code,
            codes::KEY_MISSING
        );
    }

    #[test]
    fn two_keys_under_one_id_and_hostile_key_ids_are_handled() {
        let e = Keyring::new("k", &[1; 32], &[("k".into(), &[2; 32][..])]).unwrap_err();
        assert_eq!(e.code, codes::INVALID_ARGUMENT);
        // A key id with control characters (written by whoever wrote the object) is shown tamed.
        let mut sealed = vec![5u8];
        sealed.extend_from_slice(b"a\nb\x1bc");
        sealed.extend_from_slice(&[0; 40]);
        let e = ring("k", 1).open("o", b"", &sealed).unwrap_err();
        assert_eq!(e.code, codes::KEY_MISSING);
        assert!(e.message.contains("'a?b?c'"), "{}", e.message);
    }

    /// A provider that knows `known`, counts the questions, and fails the first `fail` of them.
    struct Counting {
        known: HashMap<String, [u8; KEY_LEN]>,
        asked: Mutex<Vec<String>>,
        fail: Mutex<usize>,
    }

    impl KeyProvider for Arc<Counting> {
        fn fetch(&self, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
            self.asked.lock().unwrap().push(id.to_string());
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err(Error::new(codes::KEY_PROVIDER, "KMS throttled"));
            }
            Ok(self.known.get(id).map(|k| Zeroizing::new(k.to_vec())))
        }
    }

    fn counting(known: &[(&str, u8)], fail: usize) -> Arc<Counting> {
        Arc::new(Counting {
            known: known
                .iter()
                .map(|(id, b)| (id.to_string(), [*b; KEY_LEN]))
                .collect(),
            asked: Mutex::new(vec![]),
            fail: Mutex::new(fail),
        })
    }

    #[test]
    fn a_provider_is_asked_once_per_key_however_many_threads_need_it() {
        let who = identity(b"block", &[3; 16], &[]);
        let by_a = ring("a", 1).seal(&who, b"under a").unwrap();
        let p = counting(&[("a", 1), ("b", 2)], 0);
        let ring = Arc::new(Keyring::with_provider("b", Some(Box::new(p.clone())), &[]).unwrap());
        ring.ready().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (ring, by_a, who) = (ring.clone(), by_a.clone(), who.clone());
                std::thread::spawn(move || ring.open("o", &who, &by_a).unwrap())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), b"under a");
        }
        let sealed = ring.seal(&who, b"under b").unwrap();
        assert_eq!(key_id_of(&sealed).as_deref(), Some("b"));
        assert_eq!(*p.asked.lock().unwrap(), ["b", "a"]);
    }

    #[test]
    fn a_provider_failure_is_paid_once_by_everyone_waiting_and_then_asked_again() {
        let who = identity(b"block", &[3; 16], &[]);
        let by_a = ring("a", 1).seal(&who, b"under a").unwrap();
        let p = counting(&[("a", 1), ("b", 2)], 0);
        let ring = Arc::new(Keyring::with_provider("b", Some(Box::new(p.clone())), &[]).unwrap());
        ring.ready().unwrap();
        *p.fail.lock().unwrap() = 1;
        // All eight start together; the provider takes 20 ms to fail, so they all wait for
        // the one question.
        let start = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (ring, by_a, who) = (ring.clone(), by_a.clone(), who.clone());
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    ring.open("o", &who, &by_a).map_err(|e| e.code)
                })
            })
            .collect();
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            answers
                .iter()
                .all(|a| a == &Err(codes::KEY_PROVIDER.to_string())),
            "{answers:?}"
        );
        let asked_a = || {
            p.asked
                .lock()
                .unwrap()
                .iter()
                .filter(|id| *id == "a")
                .count()
        };
        assert_eq!(asked_a(), 1);
        // Not kept: the next read asks again, and gets the key.
        assert_eq!(ring.open("o", &who, &by_a).unwrap(), b"under a");
        assert_eq!(asked_a(), 2);
    }

    #[test]
    fn a_provider_failure_is_not_remembered_and_hostile_ids_never_reach_it() {
        let who = identity(b"block", &[3; 16], &[]);
        let p = counting(&[("k", 1)], 1);
        let ring = Keyring::with_provider("k", Some(Box::new(p.clone())), &[]).unwrap();
        assert_eq!(ring.ready().unwrap_err().code, codes::KEY_PROVIDER);
        ring.ready().unwrap();
        // An id the provider has no key for: ERR_KEY_MISSING naming it, asked once.
        let by_x = self::ring("x", 5).seal(&who, b"x").unwrap();
        for _ in 0..2 {
            let e = ring.open("o", &who, &by_x).unwrap_err();
            assert_eq!(e.code, codes::KEY_MISSING);
            assert!(e.message.contains("'x'"), "{}", e.message);
        }
        // Ids with control characters or a path separator's friends are refused unasked.
        for id in ["a\nb", "a\u{1b}[2J", "\u{0}", "é"] {
            let mut sealed = vec![id.len() as u8];
            sealed.extend_from_slice(id.as_bytes());
            sealed.extend_from_slice(&[0; 40]);
            assert_eq!(
                ring.open("o", &who, &sealed).unwrap_err().code,
                codes::KEY_MISSING
            );
        }
        assert_eq!(*p.asked.lock().unwrap(), ["k", "k", "x"]);
        // A provider's key of the wrong length is its error, shown without the bytes.
        struct Short;
        impl KeyProvider for Short {
            fn fetch(&self, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
                Ok(Some(Zeroizing::new(vec![0x5a; 31])))
            }
        }
        let e = Keyring::with_provider("k", Some(Box::new(Short)), &[])
            .unwrap()
            .ready()
            .unwrap_err();
        assert_eq!(e.code, codes::KEY_PROVIDER);
        assert!(
            e.message.contains("31") && !e.message.contains("90"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        let e = Keyring::new("k", &[9; 31], &[]).unwrap_err();
        assert_eq!(e.code, codes::INVALID_ARGUMENT);
        assert!(!e.message.contains("9, 9"));
        assert!(Keyring::new("", &[9; 32], &[]).is_err());
        assert!(Keyring::new(&"x".repeat(65), &[9; 32], &[]).is_err());
        assert!(!format!("{:?}", ring("k", 0x5a)).contains("90"));
    }
}
