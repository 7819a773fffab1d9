//! The repository cipher: every stored file sealed with one AEAD key derived from
//! the repository passphrase (FERRY_REPO_KEY), like pgBackRest's repository
//! cipher. A damaged or foreign file fails authentication instead of decoding.

use ferry_core::{Error, Result};

/// A repository key.
#[derive(Clone)]
pub struct Cipher {
    _key: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(…)")
    }
}

impl Cipher {
    /// Derives the key from a passphrase and the repository's salt.
    pub fn derive(_passphrase: &str, _salt: &[u8]) -> Cipher {
        Cipher { _key: [0; 32] }
    }

    /// Seals `plain` (a fresh nonce each time).
    pub fn seal(&self, _plain: &[u8]) -> Vec<u8> {
        Vec::new()
    }

    /// Opens what [`Cipher::seal`] made; `what` names the file in the error.
    pub fn open(&self, _sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        Err(Error::definite(format!("{what}: not built yet")))
    }
}
