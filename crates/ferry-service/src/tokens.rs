//! API tokens that can be replaced while the service runs: the admin token (its
//! hash kept in memory behind a lock, and in the metadata store once rotated, so a
//! restart — and every other node on the same store — uses the new one) and the
//! tenants' tokens (a new one at once, the old one optionally kept for a grace
//! period so clients can be switched over without an outage).

use crate::control::{random_hex, token_hash};
use crate::error::{ServiceError, ServiceResult};
use crate::store::{now_ms, Store};
use std::path::PathBuf;
use std::sync::RwLock;

/// Where the rotated admin token's hash lives in the metadata store.
pub const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// The longest grace period a rotated tenant token may keep working: a week.
pub const MAX_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// The admin token, by its hash (the token itself is not kept once rotated).
pub struct AdminToken {
    current: RwLock<String>,
    /// The `admin.token` file of the data directory: it holds a dead token once the
    /// token is rotated, so rotation removes it.
    file: Option<PathBuf>,
}

impl AdminToken {
    /// The admin token whose hash is `hash` (the store's, once rotated).
    pub fn from_hash(hash: String, file: Option<PathBuf>) -> AdminToken {
        AdminToken {
            current: RwLock::new(hash),
            file,
        }
    }

    /// The admin token `token` (from `FERRY_ADMIN_TOKEN` or the data directory).
    pub fn from_token(token: &str, file: Option<PathBuf>) -> AdminToken {
        AdminToken::from_hash(token_hash(token), file)
    }

    /// The token in effect at start: a rotated one from the store, else `configured`
    /// (which is only read when nothing was rotated).
    pub async fn load(
        store: &Store,
        configured: impl FnOnce() -> ServiceResult<String>,
        file: Option<PathBuf>,
    ) -> ServiceResult<AdminToken> {
        match store.kv(ADMIN_TOKEN_KEY).await? {
            Some(hash) => {
                eprintln!(
                    "ferry serve: the admin token was rotated; the rotated one is in effect \
                     (FERRY_ADMIN_TOKEN and the admin.token file are not used; \
                     --reset-admin-token goes back to them)"
                );
                Ok(AdminToken::from_hash(hash, file))
            }
            None => Ok(AdminToken::from_token(&configured()?, file)),
        }
    }

    fn cached(&self) -> String {
        self.current.read().expect("not poisoned").clone()
    }

    fn set(&self, hash: String) {
        *self.current.write().expect("not poisoned") = hash;
    }

    /// Whether `token` is the admin token. The store has the last word (another node
    /// may have rotated it): a token matching the cached hash is confirmed against
    /// the store, and one matching nothing is checked against the store again
    /// (`maybe_rotated_elsewhere`: the caller found no tenant with it either).
    pub async fn matches(
        &self,
        store: &Store,
        token: &str,
        maybe_rotated_elsewhere: bool,
    ) -> ServiceResult<bool> {
        let h = token_hash(token);
        let cached = self.cached();
        if h != cached && !maybe_rotated_elsewhere {
            return Ok(false);
        }
        match store.kv(ADMIN_TOKEN_KEY).await? {
            Some(stored) => {
                if stored != cached {
                    self.set(stored.clone());
                }
                Ok(h == stored)
            }
            None => Ok(h == cached),
        }
    }

    /// A new admin token: the old one stops working at once, on every node sharing
    /// the store and after a restart. Returns the new token (shown once).
    pub async fn rotate(&self, store: &Store) -> ServiceResult<String> {
        let token = format!("fa_{}", random_hex(24));
        let hash = token_hash(&token);
        store.kv_set(ADMIN_TOKEN_KEY, &hash).await?;
        self.set(hash);
        if let Some(f) = &self.file {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(
                    "the admin token was rotated but {} (holding the old one) could not be removed: {e}",
                    f.display()
                ),
            }
        }
        tracing::info!("the admin token was rotated");
        Ok(token)
    }
}

/// A tenant's new token (shown once) and until when the old one still works.
pub async fn rotate_tenant(
    store: &Store,
    name: &str,
    grace_seconds: Option<i64>,
) -> ServiceResult<(String, Option<i64>)> {
    let grace = match grace_seconds {
        None | Some(0) => None,
        Some(s) if (1..=MAX_GRACE_SECONDS).contains(&s) => Some(s),
        Some(s) => {
            return Err(ServiceError::Invalid {
                field: "grace_seconds".into(),
                reason: format!(
                    "{s} is not between 0 and {MAX_GRACE_SECONDS} (a week); 0 or none ends the old token now"
                ),
            })
        }
    };
    let token = format!("fy_{}", random_hex(24));
    let until = grace.map(|s| now_ms() + s * 1000);
    store
        .rotate_tenant_token(name, &token_hash(&token), until)
        .await?;
    tracing::info!(
        tenant = name,
        grace_seconds = grace.unwrap_or(0),
        "tenant token rotated"
    );
    Ok((token, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &std::path::Path) -> Store {
        Store::open(&format!("sqlite://{}", dir.join("m.db").display()))
            .await
            .unwrap()
    }

    /// A rotated admin token replaces the configured one at once, is what a restart
    /// (a new `load`) uses, and a node that cached the old one learns of it.
    #[tokio::test]
    async fn a_rotated_admin_token_replaces_the_old_one_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let file = dir.path().join("admin.token");
        std::fs::write(&file, "old").unwrap();
        let a = AdminToken::load(&s, || Ok("old".into()), Some(file.clone()))
            .await
            .unwrap();
        let other_node = AdminToken::load(&s, || Ok("old".into()), None)
            .await
            .unwrap();
        assert!(a.matches(&s, "old", false).await.unwrap());
        let new = a.rotate(&s).await.unwrap();
        assert!(!file.exists(), "the file with the dead token stays");
        assert!(!a.matches(&s, "old", true).await.unwrap());
        assert!(a.matches(&s, &new, false).await.unwrap());
        // the other node: the old token is refused, the new one accepted
        assert!(!other_node.matches(&s, "old", false).await.unwrap());
        assert!(other_node.matches(&s, &new, true).await.unwrap());
        // a restart keeps the new one, whatever is configured
        let restarted = AdminToken::load(&s, || panic!("not read"), None)
            .await
            .unwrap();
        assert!(restarted.matches(&s, &new, false).await.unwrap());
        assert!(!restarted.matches(&s, "old", true).await.unwrap());
    }

    #[tokio::test]
    async fn a_tenant_token_rotates_with_or_without_grace() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        s.create_tenant("acme", &token_hash("t0"), 0).await.unwrap();
        let who = |t: String| {
            let s = s.clone();
            async move {
                s.tenant_by_token(&token_hash(&t))
                    .await
                    .unwrap()
                    .map(|t| t.name)
            }
        };
        let (t1, until) = rotate_tenant(&s, "acme", Some(60)).await.unwrap();
        assert!(until.unwrap() > now_ms());
        assert_eq!(who("t0".into()).await.as_deref(), Some("acme"), "grace");
        assert_eq!(who(t1.clone()).await.as_deref(), Some("acme"));
        let (t2, until) = rotate_tenant(&s, "acme", None).await.unwrap();
        assert_eq!(until, None);
        assert_eq!(who("t0".into()).await, None);
        assert_eq!(who(t1).await, None, "no grace: the old token ends at once");
        assert_eq!(who(t2).await.as_deref(), Some("acme"));
        for bad in [-1, MAX_GRACE_SECONDS + 1] {
            assert!(matches!(
                rotate_tenant(&s, "acme", Some(bad)).await,
                Err(ServiceError::Invalid { .. })
            ));
        }
        assert!(matches!(
            rotate_tenant(&s, "nobody", None).await,
            Err(ServiceError::NotFound(_))
        ));
    }
}
