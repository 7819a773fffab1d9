//! The repository cipher: every stored file sealed with one AEAD key derived from
//! the repository passphrase (FERRY_REPO_KEY), like pgBackRest's repository
//! cipher. A damaged or foreign file fails authentication instead of decoding.
//!
//! - AEAD: XChaCha20-Poly1305 (RustCrypto), a fresh random 24-byte nonce per
//!   file (random nonces this long never collide in practice);
//! - key: PBKDF2-HMAC-SHA256 of the passphrase with the repository's random salt
//!   (16 bytes, in the marker) and [`KDF_ITERATIONS`] rounds;
//! - sealed object: `FZX1` (4 bytes), nonce (24 bytes), ciphertext with its
//!   16-byte Poly1305 tag.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ferry_core::{Error, Result};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, OnceLock};

/// PBKDF2 rounds for new repositories (OWASP's figure for PBKDF2-HMAC-SHA256): a
/// stolen repository cannot be brute-forced cheaply. Stored in the marker, so it
/// can grow for new repositories without breaking old ones.
pub const KDF_ITERATIONS: u32 = 600_000;

/// The KDF's name in the marker.
pub const KDF_NAME: &str = "pbkdf2-hmac-sha256";

/// The AEAD's name in the marker.
pub const AEAD_NAME: &str = "xchacha20-poly1305";

/// The first bytes of every sealed object.
pub const SEALED_MAGIC: &[u8; 4] = b"FZX1";

const NONCE: usize = 24;
const TAG: usize = 16;

/// A repository key.
#[derive(Clone)]
pub struct Cipher {
    key: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

impl PartialEq for Cipher {
    fn eq(&self, other: &Self) -> bool {
        // Not secret-dependent in any way an attacker can observe here (both keys
        // are ours), but keep it constant-time anyway.
        self.key
            .iter()
            .zip(other.key.iter())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0
    }
}

/// Derived keys by (passphrase, salt, rounds) digest: a process opening the same
/// repository again (the service, tests) derives its key once.
fn cache() -> &'static Mutex<HashMap<[u8; 32], [u8; 32]>> {
    static C: OnceLock<Mutex<HashMap<[u8; 32], [u8; 32]>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Cipher {
    /// Derives the key from a passphrase and the repository's salt.
    pub fn derive(passphrase: &str, salt: &[u8]) -> Cipher {
        Cipher::derive_with(passphrase, salt, KDF_ITERATIONS)
    }

    /// Derives the key with `iterations` PBKDF2 rounds (the count the repository's
    /// marker records).
    pub fn derive_with(passphrase: &str, salt: &[u8], iterations: u32) -> Cipher {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((passphrase.len() as u64).to_le_bytes());
        h.update(passphrase.as_bytes());
        h.update((salt.len() as u64).to_le_bytes());
        h.update(salt);
        h.update(iterations.to_le_bytes());
        let id: [u8; 32] = h.finalize().into();
        if let Some(k) = cache().lock().ok().and_then(|c| c.get(&id).copied()) {
            return Cipher { key: k };
        }
        let mut key = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(iterations.max(1)).expect("at least one round"),
            salt,
            passphrase.as_bytes(),
            &mut key,
        );
        if let Ok(mut c) = cache().lock() {
            c.insert(id, key);
        }
        Cipher { key }
    }

    /// A fresh random salt for a new repository.
    pub fn new_salt() -> [u8; 16] {
        let mut s = [0u8; 16];
        // The nonce generator is the OS's random source; two nonces make a salt.
        let n = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        s.copy_from_slice(&n[..16]);
        s
    }

    /// Seals `plain` (a fresh nonce each time).
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let aead = XChaCha20Poly1305::new(&self.key.into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = aead
            .encrypt(&nonce, plain)
            .expect("XChaCha20-Poly1305 seals any length a file can have");
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + NONCE + ct.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`Cipher::seal`] made; `what` names the file in the error.
    pub fn open(&self, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        if !is_sealed(sealed) {
            return Err(Error::definite(format!(
                "{what}: not an encrypted Ferry file (no FZX1 header)"
            ))
            .with_hint(
                "the file is damaged or was not written by this repository; \
                 `ferry backup verify` checks the set",
            ));
        }
        if sealed.len() < SEALED_MAGIC.len() + NONCE + TAG {
            return Err(Error::definite(format!(
                "{what}: encrypted file is truncated ({} bytes)",
                sealed.len()
            ))
            .with_hint("the file is damaged; restore from another set or copy"));
        }
        let aead = XChaCha20Poly1305::new(&self.key.into());
        let nonce = XNonce::from_slice(&sealed[4..4 + NONCE]);
        aead.decrypt(nonce, &sealed[4 + NONCE..]).map_err(|_| {
            Error::definite(format!(
                "{what}: authentication failed: the file is damaged or was sealed with another key"
            ))
            .with_hint(
                "the stored bytes were changed after they were written (or belong to another \
                 repository); restore from another set or copy",
            )
        })
    }
}

/// True when `b` starts like a sealed object.
pub fn is_sealed(b: &[u8]) -> bool {
    b.starts_with(SEALED_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let salt = Cipher::new_salt();
        let c = Cipher::derive_with("pass", &salt, 1000);
        let s1 = c.seal(b"hello");
        let s2 = c.seal(b"hello");
        assert_ne!(s1, s2, "fresh nonce each time");
        assert_eq!(c.open(&s1, "f").unwrap(), b"hello");
        let mut bad = s1.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = c.open(&bad, "set X: file a.fzr").unwrap_err();
        assert!(e.message.contains("a.fzr") && e.message.contains("authentication"));
        let other = Cipher::derive_with("other", &salt, 1000);
        assert!(other.open(&s1, "f").is_err());
        assert!(c.open(b"FZX1short", "f").is_err());
        assert!(c.open(b"plain", "f").is_err());
        assert_eq!(Cipher::derive_with("pass", &salt, 1000), c);
        assert_ne!(Cipher::derive_with("pass", &salt, 1001), c);
        assert_eq!(format!("{c:?}"), "Cipher(…)");
    }
}
