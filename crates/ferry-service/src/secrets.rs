//! Database passwords at rest: sealed with XChaCha20-Poly1305 under a key from
//! `FERRY_SECRET_KEY` (64 hex digits, or any phrase, hashed) or a key file created
//! with mode 0600 on first start. The API never returns them.

use crate::error::{ServiceError, ServiceResult};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Seals and opens secrets.
#[derive(Clone)]
pub struct Secrets {
    cipher: XChaCha20Poly1305,
}

impl Secrets {
    /// The key from `FERRY_SECRET_KEY`, else `key_file` (created when missing).
    pub fn load(key_file: &Path) -> ServiceResult<Secrets> {
        let key: [u8; 32] = match std::env::var("FERRY_SECRET_KEY") {
            Ok(k) if !k.is_empty() => match hex::decode(&k) {
                Ok(b) if b.len() == 32 => b.try_into().expect("32 bytes"),
                _ => Sha256::digest(k.as_bytes()).into(),
            },
            _ => read_or_create(key_file)?,
        };
        Ok(Secrets {
            cipher: XChaCha20Poly1305::new(&key.into()),
        })
    }

    /// Encrypts `plain` into hex(nonce ‖ ciphertext).
    pub fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend(ct);
        hex::encode(out)
    }

    /// Decrypts what `seal` produced.
    pub fn open(&self, sealed: &str) -> ServiceResult<String> {
        let bad = || {
            ServiceError::Internal(
                "a stored password cannot be decrypted: FERRY_SECRET_KEY or the key file changed since it was stored"
                    .into(),
            )
        };
        let raw = hex::decode(sealed).map_err(|_| bad())?;
        if raw.len() < 24 {
            return Err(bad());
        }
        let (nonce, ct) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

fn read_or_create(path: &Path) -> ServiceResult<[u8; 32]> {
    let io = |e: std::io::Error| {
        ServiceError::Unavailable(format!("secret key file {}: {e}", path.display()))
    };
    if let Ok(text) = std::fs::read_to_string(path) {
        return hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                ServiceError::Unavailable(format!(
                    "secret key file {} does not hold 64 hex digits",
                    path.display()
                ))
            });
    }
    let key: [u8; 32] = rand::random();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    use std::io::Write;
    #[cfg(unix)]
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?
    };
    #[cfg(not(unix))]
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(hex::encode(key).as_bytes()).map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_round_trip_and_differ_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::load(&dir.path().join("key")).unwrap();
        let a = s.seal("p@ss");
        assert_ne!(a, s.seal("p@ss"));
        assert!(!a.contains("p@ss"));
        assert_eq!(s.open(&a).unwrap(), "p@ss");
        // the key file persists: a new instance opens the old seal
        let s2 = Secrets::load(&dir.path().join("key")).unwrap();
        assert_eq!(s2.open(&a).unwrap(), "p@ss");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = Secrets::load(&dir.path().join("other")).unwrap();
        assert!(other.open(&a).is_err());
    }
}
