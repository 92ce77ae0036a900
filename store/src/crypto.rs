//! Keys: the master key, its public key id, and the one per-segment key
//! derivation (HKDF-SHA256). Nonces are frame sequence numbers.

use std::path::Path;

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::StoreError;

/// Bytes the GCM tag adds to every encrypted payload.
pub const TAG_LEN: usize = 16;

/// A 256-bit master key. Never printed (Debug is redacted); its bytes are
/// overwritten with zeros when it is dropped, so a freed key does not linger
/// in memory (or in a core dump).
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl Zeroize for MasterKey {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut key = MasterKey([0u8; 32]);
        getrandom::getrandom(&mut key.0).expect("the OS random source failed");
        key
    }

    /// Reads a key file: 32 raw bytes or 64 hex characters (whitespace trimmed).
    pub fn from_file(path: &Path) -> Result<MasterKey, StoreError> {
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| StoreError::io(format!("reading key file {}", path.display()), e))?,
        );
        if bytes.len() == 32 {
            let mut key = MasterKey([0u8; 32]);
            key.0.copy_from_slice(&bytes);
            return Ok(key);
        }
        let text = String::from_utf8_lossy(&bytes);
        parse_hex_key(text.trim()).ok_or_else(|| StoreError::BadKeyFile {
            path: path.to_path_buf(),
        })
    }

    /// 64 lower-case hex characters, for writing a key file. The caller
    /// holds a copy of the key: wrap it in `zeroize::Zeroizing`.
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        for b in self.0 {
            hex.push(char::from_digit(u32::from(b >> 4), 16).expect("a nibble"));
            hex.push(char::from_digit(u32::from(b & 15), 16).expect("a nibble"));
        }
        hex
    }

    /// Public fingerprint stored in segment headers, so a wrong key is found
    /// before anything is read or written.
    pub fn key_id(&self) -> u64 {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let mut out = [0u8; 8];
        hk.expand(b"booster key id", &mut out)
            .expect("8 bytes is a valid HKDF length");
        // 0 means "unencrypted" in the header; a real key id of 0 is remapped.
        u64::from_le_bytes(out).max(1)
    }

    /// The data key of one segment: HKDF-SHA256(master, salt, "booster segment key" ++ id).
    pub(crate) fn segment_cipher(&self, salt: &[u8; 32], segment_id: u64) -> SegmentCipher {
        let hk = Hkdf::<Sha256>::new(Some(salt), &self.0);
        let mut info = Vec::with_capacity(27);
        info.extend_from_slice(b"booster segment key");
        info.extend_from_slice(&segment_id.to_le_bytes());
        let mut key = [0u8; 32];
        hk.expand(&info, &mut key)
            .expect("32 bytes is a valid HKDF length");
        SegmentCipher::new(&key)
    }

    /// The manifest's key: HKDF-SHA256(master, no salt, "booster manifest key").
    fn manifest_key(&self) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(None, &self.0);
        let mut key = [0u8; 32];
        hk.expand(b"booster manifest key", &mut key)
            .expect("32 bytes is a valid HKDF length");
        key
    }

    /// HMAC-SHA256 of a manifest's bytes under the manifest key.
    pub(crate) fn manifest_mac(&self, bytes: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.manifest_key())
            .expect("HMAC takes a key of any length");
        mac.update(bytes);
        mac.finalize().into_bytes().into()
    }

    /// Checks a manifest MAC in constant time.
    pub(crate) fn manifest_mac_verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.manifest_key())
            .expect("HMAC takes a key of any length");
        mac.update(bytes);
        mac.verify_slice(tag).is_ok()
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn parse_hex_key(text: &str) -> Option<MasterKey> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut key = MasterKey([0u8; 32]);
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        key.0[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(key)
}

/// AES-256-GCM under one segment's data key.
#[derive(Clone)]
pub(crate) struct SegmentCipher {
    aead: Aes256Gcm,
    #[cfg(debug_assertions)]
    fingerprint: [u8; 16],
}

fn nonce_bytes(seq: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&seq.to_le_bytes());
    nonce
}

impl SegmentCipher {
    fn new(key: &[u8; 32]) -> SegmentCipher {
        SegmentCipher {
            aead: Aes256Gcm::new(GenericArray::from_slice(key)),
            #[cfg(debug_assertions)]
            fingerprint: nonce_registry::fingerprint(key),
        }
    }

    /// Encrypts `buf` in place and returns the tag. `seq` is the nonce and
    /// must never be sealed twice under this key (asserted in debug builds).
    pub(crate) fn seal(&self, seq: u64, aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        #[cfg(debug_assertions)]
        nonce_registry::note_use(self.fingerprint, seq);
        #[cfg(test)]
        SEALS_ON_THIS_THREAD.with(|n| n.set(n.get() + 1));
        let tag = self
            .aead
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce_bytes(seq)), aad, buf)
            .expect("AES-GCM encryption of a payload under 64 GiB cannot fail");
        tag.into()
    }

    /// Decrypts `buf` in place; false when the tag does not match.
    pub(crate) fn open(&self, seq: u64, aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        self.aead
            .decrypt_in_place_detached(
                GenericArray::from_slice(&nonce_bytes(seq)),
                aad,
                buf,
                GenericArray::from_slice(tag),
            )
            .is_ok()
    }
}

#[cfg(test)]
thread_local! {
    static SEALS_ON_THIS_THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Payloads this thread has sealed (tests of where the crypto runs).
#[cfg(test)]
pub(crate) fn seals_on_this_thread() -> u64 {
    SEALS_ON_THIS_THREAD.with(std::cell::Cell::get)
}

/// Debug-build check of G6: no (key, nonce) pair is ever sealed twice in this
/// process, across reopen, truncation and compaction.
#[cfg(debug_assertions)]
mod nonce_registry {
    use sha2::Digest;
    use std::collections::HashSet;
    use std::sync::Mutex;

    type NonceSet = HashSet<([u8; 16], u64)>;
    static USED: Mutex<Option<NonceSet>> = Mutex::new(None);

    pub(super) fn fingerprint(key: &[u8; 32]) -> [u8; 16] {
        let digest = sha2::Sha256::digest(key);
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    pub(super) fn note_use(fingerprint: [u8; 16], seq: u64) {
        let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = used
            .get_or_insert_with(HashSet::new)
            .insert((fingerprint, seq));
        assert!(fresh, "AES-GCM nonce {seq} reused under one segment key");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroizing_a_key_overwrites_every_byte() {
        // Drop runs exactly this.
        let mut key = MasterKey([0xa5; 32]);
        key.zeroize();
        assert_eq!(key.0, [0u8; 32]);
    }

    #[test]
    fn a_key_file_that_holds_no_key_is_refused_naming_the_file_not_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key\n").unwrap();
        let err = MasterKey::from_file(&path).err().unwrap();
        assert!(
            matches!(&err, StoreError::BadKeyFile { path: p } if *p == path),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("bad.key") && text.contains("64 hex"),
            "{text}"
        );
        // How to make one is the CLI's to say (`booster keygen`).
        assert!(!text.contains("booster"), "{text}");
    }

    #[test]
    fn hex_round_trip_gives_the_same_key() {
        let key = MasterKey::generate();
        let back = parse_hex_key(&key.to_hex()).unwrap();
        assert_eq!(key.0, back.0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "nonce")]
    fn sealing_twice_with_one_nonce_under_one_key_panics_in_debug_builds() {
        let cipher = MasterKey([3; 32]).segment_cipher(&[4; 32], 99);
        let mut buf = *b"record";
        cipher.seal(5, b"", &mut buf);
        cipher.seal(5, b"", &mut buf);
    }

    #[test]
    fn segment_keys_differ_by_salt_and_id() {
        let key = MasterKey([7; 32]);
        let a = key.segment_cipher(&[1; 32], 1);
        let b = key.segment_cipher(&[2; 32], 1);
        let mut buf_a = *b"hello world";
        let mut buf_b = *b"hello world";
        let ta = a.seal(u64::MAX - 1, b"", &mut buf_a);
        let tb = b.seal(u64::MAX - 1, b"", &mut buf_b);
        assert_ne!(buf_a, buf_b);
        assert!(!b.open(u64::MAX - 1, b"", &mut buf_a, &ta));
        assert!(b.open(u64::MAX - 1, b"", &mut buf_b, &tb));
        assert_eq!(&buf_b, b"hello world");
    }
}
