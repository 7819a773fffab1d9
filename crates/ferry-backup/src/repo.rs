//! A repository: a storage with Ferry's marker (format version, cipher salt and key
//! check) and the sets in it ([`crate::layout`]). Every read of a file checks its
//! SHA-256 against the manifest and names the file when it is missing or damaged.
//!
//! The marker (`ferry-repository.json`) is plain JSON even in an encrypted
//! repository: it holds no secret, only what a reader needs to derive the key and
//! to tell a wrong key from a damaged file (a sealed known text). Everything else —
//! data and changes files, manifests, progress records — is sealed when the
//! repository is encrypted.

use crate::cipher::{self, Cipher};
use crate::codec::sha256_hex;
use crate::layout;
use crate::manifest::{FileEntry, Manifest};
use crate::storage::Storage;
use bytes::Bytes;
use ferry_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// The environment variable holding the repository passphrase.
pub const KEY_ENV: &str = "FERRY_REPO_KEY";

/// The plain text sealed in the marker's key check.
const KEY_CHECK_TEXT: &[u8] = b"ferry repository key check v1";

/// The repository's marker object (`ferry-repository.json`), as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Always `ferry-backup-repository`: tells the object from any other JSON.
    pub kind: String,
    /// The repository format ([`layout::FORMAT`]); a newer one is refused.
    pub format: u32,
    /// When the repository was created (RFC 3339, UTC).
    pub created_at: String,
    /// The Ferry version that created it.
    pub created_by: String,
    /// The encryption, `None` for a plain repository.
    pub encryption: Option<Encryption>,
}

/// How an encrypted repository's key is derived and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encryption {
    /// [`cipher::AEAD_NAME`].
    pub cipher: String,
    /// [`cipher::KDF_NAME`].
    pub kdf: String,
    /// PBKDF2 rounds.
    pub iterations: u32,
    /// The KDF salt, hex.
    pub salt: String,
    /// A known text sealed with the key, hex: a wrong key fails to open it.
    pub key_check: String,
}

const MARKER_KIND: &str = "ferry-backup-repository";

/// An open repository.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Where it lives.
    pub storage: Storage,
    /// Its key, when it is encrypted.
    pub cipher: Option<Cipher>,
}

impl Repo {
    /// Opens the existing repository at `url` (`key`: its passphrase). Fails when
    /// there is none, when it is encrypted and no or a wrong key is given, or when
    /// it is of a newer format.
    pub async fn open(url: &str, key: Option<&str>) -> Result<Repo> {
        let storage = Storage::open(url)?;
        match read_marker(&storage).await? {
            Some(m) => Repo::from_marker(storage, &m, key),
            None => Err(Error::definite(format!(
                "no Ferry backup repository at {} (no {})",
                storage.url(),
                layout::MARKER
            ))
            .with_hint("check the URL; a repository is created by the first backup written to it")),
        }
    }

    /// Opens the repository at `url`, creating it (encrypted when `key` is given)
    /// when the location holds none yet.
    pub async fn create_or_open(url: &str, key: Option<&str>) -> Result<Repo> {
        let storage = Storage::open(url)?;
        if let Some(m) = read_marker(&storage).await? {
            return Repo::from_marker(storage, &m, key);
        }
        let key = key.filter(|k| !k.is_empty());
        let encryption = key.map(|k| {
            let salt = Cipher::new_salt();
            let c = Cipher::derive_with(k, &salt, cipher::KDF_ITERATIONS);
            Encryption {
                cipher: cipher::AEAD_NAME.into(),
                kdf: cipher::KDF_NAME.into(),
                iterations: cipher::KDF_ITERATIONS,
                salt: hex::encode(salt),
                key_check: hex::encode(c.seal(KEY_CHECK_TEXT)),
            }
        });
        let marker = Marker {
            kind: MARKER_KIND.into(),
            format: layout::FORMAT,
            created_at: layout::rfc3339(chrono::Utc::now().timestamp()),
            created_by: format!("ferry {}", env!("CARGO_PKG_VERSION")),
            encryption,
        };
        let text = serde_json::to_vec_pretty(&marker).expect("a marker always serialises");
        if storage
            .put_if_absent(layout::MARKER, Bytes::from(text))
            .await?
        {
            tracing::info!(
                repository = %storage.url(),
                encrypted = key.is_some(),
                "created backup repository"
            );
        }
        // Read back: when another writer created it at once, use the one stored.
        let m = read_marker(&storage).await?.ok_or_else(|| {
            Error::transient(format!(
                "repository {}: the marker just written is not there",
                storage.url()
            ))
        })?;
        Repo::from_marker(storage, &m, key)
    }

    fn from_marker(storage: Storage, m: &Marker, key: Option<&str>) -> Result<Repo> {
        let url = storage.url().to_string();
        let key = key.filter(|k| !k.is_empty());
        if m.format > layout::FORMAT {
            return Err(Error::definite(format!(
                "repository {url} is in format {} but this Ferry reads format {} at most",
                m.format,
                layout::FORMAT
            ))
            .with_hint("use a newer Ferry"));
        }
        let Some(enc) = &m.encryption else {
            if key.is_some() {
                tracing::warn!(repository = %url, "repository is not encrypted; the key given is not used");
            }
            return Ok(Repo {
                storage,
                cipher: None,
            });
        };
        let Some(key) = key else {
            return Err(Error::definite(format!(
                "repository {url} is encrypted and no key was given"
            ))
            .with_hint(format!(
                "set {KEY_ENV} to the key the repository was created with"
            )));
        };
        if enc.cipher != cipher::AEAD_NAME || enc.kdf != cipher::KDF_NAME {
            return Err(Error::definite(format!(
                "repository {url}: unknown encryption {} / {}",
                enc.cipher, enc.kdf
            ))
            .with_hint("use a newer Ferry"));
        }
        let damaged = |what: &str| {
            Error::definite(format!(
                "repository {url}: damaged {}: {what}",
                layout::MARKER
            ))
        };
        let salt = hex::decode(&enc.salt).map_err(|_| damaged("salt is not hex"))?;
        let check = hex::decode(&enc.key_check).map_err(|_| damaged("key check is not hex"))?;
        let c = Cipher::derive_with(key, &salt, enc.iterations);
        match c.open(&check, layout::MARKER) {
            Ok(t) if t == KEY_CHECK_TEXT => Ok(Repo {
                storage,
                cipher: Some(c),
            }),
            _ => Err(Error::definite(format!(
                "wrong repository key for {url}: the key does not open the repository's key check"
            ))
            .with_hint(format!(
                "set {KEY_ENV} to the key the repository was created with"
            ))),
        }
    }

    /// True when the repository's files are sealed.
    pub fn encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Seals `plain` when the repository is encrypted.
    fn seal(&self, plain: Vec<u8>) -> Vec<u8> {
        match &self.cipher {
            Some(c) => c.seal(&plain),
            None => plain,
        }
    }

    /// Opens stored JSON-ish bytes (sealed when the repository is encrypted).
    fn unseal(&self, stored: Bytes, what: &str) -> Result<Vec<u8>> {
        match &self.cipher {
            Some(c) => c.open(&stored, what),
            None if cipher::is_sealed(&stored) => Err(Error::definite(format!(
                "{what}: the object is encrypted but the repository is not"
            ))
            .with_hint("the object was not written by this repository; remove it")),
            None => Ok(stored.to_vec()),
        }
    }

    /// Stores a JSON document (sealed when the repository is encrypted).
    pub async fn put_json<T: serde::Serialize + Sync>(&self, path: &str, value: &T) -> Result<()> {
        let text = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::definite(format!("{path}: cannot write the document: {e}")))?;
        self.storage.put(path, Bytes::from(self.seal(text))).await
    }

    /// The plain bytes of a document [`Repo::put_json`] stored; `None` when absent.
    pub async fn get_json_bytes(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some(b) = self.storage.get(path).await? else {
            return Ok(None);
        };
        let what = format!("{} {path}", self.storage.url());
        self.unseal(b, &what).map(Some)
    }

    /// Reads a JSON document [`Repo::put_json`] stored; `None` when absent.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let Some(b) = self.get_json_bytes(path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::definite(format!(
                "{} {path}: damaged document: {e}",
                self.storage.url()
            ))
        })
    }

    /// Stores a finished file of `set` at `rel` (relative to the set's directory).
    pub async fn put_file(&self, cluster: &str, set: &str, rel: &str, bytes: Bytes) -> Result<()> {
        self.storage
            .put(&format!("{}/{rel}", layout::set_dir(cluster, set)), bytes)
            .await
    }

    /// The stored bytes of a file of `m`, checked against its size and SHA-256:
    /// missing or damaged files are errors naming the file.
    pub async fn read_file(&self, m: &Manifest, f: &FileEntry) -> Result<Bytes> {
        let path = format!("{}/{}", layout::set_dir(&m.cluster, &m.id), f.path);
        let hint = "`ferry backup verify` checks every file of the set; restore from another \
                    set, or from a copy of this one";
        let Some(b) = self.storage.get(&path).await? else {
            return Err(Error::definite(format!(
                "set {}: file {} is missing (in {})",
                m.id,
                f.path,
                self.storage.url()
            ))
            .with_hint(hint));
        };
        check_file(m, f, &b).map_err(|e| e.with_hint(hint))?;
        Ok(b)
    }

    /// Writes a set's manifest (last: the set is complete from then on).
    pub async fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let path = layout::manifest(&m.cluster, &m.id);
        self.storage
            .put(&path, Bytes::from(self.seal(m.to_json())))
            .await
    }

    /// The manifest of set `set` of `cluster`; `None` when the set has none
    /// (incomplete, or no such set).
    pub async fn manifest(&self, cluster: &str, set: &str) -> Result<Option<Manifest>> {
        let path = layout::manifest(cluster, set);
        let what = format!("set {set}: {path}");
        let Some(b) = self.storage.get(&path).await? else {
            return Ok(None);
        };
        let plain = self.unseal(b, &what)?;
        Manifest::from_json(&plain, &what).map(Some)
    }

    /// The clusters with a directory in the repository (`cluster` alone when given).
    async fn clusters(&self, cluster: Option<&str>) -> Result<Vec<String>> {
        match cluster {
            Some(c) => Ok(vec![c.to_string()]),
            None => Ok(self
                .storage
                .list_dirs("clusters")
                .await?
                .into_iter()
                .filter(|c| layout::valid_cluster(c))
                .collect()),
        }
    }

    /// Set ids with a directory in `cluster`, sorted (oldest first).
    async fn set_ids(&self, cluster: &str) -> Result<Vec<String>> {
        Ok(self
            .storage
            .list_dirs(&layout::sets_dir(cluster))
            .await?
            .into_iter()
            .filter(|s| layout::valid_set_id(s))
            .collect())
    }

    /// The complete sets (with a manifest) of `cluster` (every cluster for `None`),
    /// oldest first.
    pub async fn sets(&self, cluster: Option<&str>) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for c in self.clusters(cluster).await? {
            for s in self.set_ids(&c).await? {
                if let Some(m) = self.manifest(&c, &s).await? {
                    out.push(m);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.cluster.cmp(&b.cluster)));
        Ok(out)
    }

    /// The complete set `id`, in whichever cluster; an error naming the id when the
    /// repository has none (or only an incomplete one).
    pub async fn find_set(&self, id: &str) -> Result<Manifest> {
        if !layout::valid_set_id(id) {
            return Err(Error::definite(format!("{id:?} is not a backup set id"))
                .with_hint("`ferry backup list` shows the sets and their ids"));
        }
        let mut incomplete = None;
        for c in self.clusters(None).await? {
            if let Some(m) = self.manifest(&c, id).await? {
                return Ok(m);
            }
            if incomplete.is_none()
                && !self
                    .storage
                    .list(&layout::set_dir(&c, id))
                    .await?
                    .is_empty()
            {
                incomplete = Some(c);
            }
        }
        match incomplete {
            Some(c) => Err(Error::definite(format!(
                "backup set {id} (cluster {c}) in {} is incomplete: it has no manifest",
                self.storage.url()
            ))
            .with_hint("the backup is still running or died; use another set")),
            None => Err(
                Error::definite(format!("no backup set {id} in {}", self.storage.url()))
                    .with_hint("`ferry backup list` shows the sets and their ids"),
            ),
        }
    }

    /// Sets without a manifest (running, or died): cluster and set id.
    pub async fn incomplete_sets(&self, cluster: Option<&str>) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for c in self.clusters(cluster).await? {
            for s in self.set_ids(&c).await? {
                if self
                    .storage
                    .size(&layout::manifest(&c, &s))
                    .await?
                    .is_none()
                {
                    out.push((c.clone(), s));
                }
            }
        }
        Ok(out)
    }

    /// Removes a set: its manifest first (from then on it is incomplete and
    /// invisible), then its files; an interrupted removal is finished by the next.
    pub async fn delete_set(&self, cluster: &str, set: &str) -> Result<()> {
        if !layout::valid_cluster(cluster) || !layout::valid_set_id(set) {
            return Err(Error::definite(format!(
                "{cluster}/{set}: not a cluster name and set id"
            )));
        }
        self.storage.delete(&layout::manifest(cluster, set)).await?;
        self.storage
            .delete_prefix(&layout::set_dir(cluster, set))
            .await?;
        tracing::info!(repository = %self.storage.url(), cluster, set, "removed backup set");
        Ok(())
    }

    /// Copies complete set `set` of `cluster` to `to` (secondary backup): every file,
    /// each checked by SHA-256 as read back from `to`, the manifest last (sealed
    /// with `to`'s key).
    ///
    /// When the two repositories' keys differ, each file is opened with this
    /// repository's key and sealed with `to`'s, and the copied manifest records the
    /// new sizes and checksums. A set `to` already holds complete is left as it is.
    pub async fn copy_set(&self, to: &Repo, cluster: &str, set: &str) -> Result<Manifest> {
        let m = self.manifest(cluster, set).await?.ok_or_else(|| {
            Error::definite(format!(
                "no complete backup set {set} of cluster {cluster} in {}",
                self.storage.url()
            ))
            .with_hint("`ferry backup list` shows the sets")
        })?;
        if let Some(existing) = to.manifest(cluster, set).await? {
            return Ok(existing);
        }
        let same_key = self.cipher == to.cipher;
        let mut out = m.clone();
        out.encrypted = to.encrypted();
        for (i, f) in m.files.iter().enumerate() {
            let stored = self.read_file(&m, f).await?;
            let bytes = if same_key {
                stored
            } else {
                let what = format!("set {}: file {}", m.id, f.path);
                let plain = match &self.cipher {
                    Some(c) => c.open(&stored, &what)?,
                    None => stored.to_vec(),
                };
                Bytes::from(to.seal(plain))
            };
            let entry = &mut out.files[i];
            entry.sha256 = sha256_hex(&bytes);
            entry.bytes = bytes.len() as u64;
            to.put_file(cluster, set, &f.path, bytes).await?;
            // Read back from the copy: what is there is what the manifest says.
            to.read_file(&out, &out.files[i])
                .await
                .map_err(|e| e.context(format!("copying to {}", to.storage.url())))?;
        }
        to.write_manifest(&out).await?;
        tracing::info!(
            from = %self.storage.url(),
            to = %to.storage.url(),
            cluster,
            set,
            files = out.files.len(),
            "copied backup set"
        );
        Ok(out)
    }
}

/// Checks stored bytes against a manifest's entry (size, SHA-256).
pub fn check_file(m: &Manifest, f: &FileEntry, b: &[u8]) -> Result<()> {
    if b.len() as u64 != f.bytes {
        return Err(Error::definite(format!(
            "set {}: file {} is damaged: {} bytes stored, the manifest says {}",
            m.id,
            f.path,
            b.len(),
            f.bytes
        )));
    }
    let sum = sha256_hex(b);
    if sum != f.sha256 {
        return Err(Error::definite(format!(
            "set {}: file {} checksum mismatch (stored {sum}, manifest {})",
            m.id, f.path, f.sha256
        )));
    }
    Ok(())
}

/// The marker at `storage`'s root; `None` when there is none.
async fn read_marker(storage: &Storage) -> Result<Option<Marker>> {
    let Some(b) = storage.get(layout::MARKER).await? else {
        return Ok(None);
    };
    #[derive(Deserialize)]
    struct Head {
        kind: Option<String>,
        format: Option<u32>,
    }
    let not_ours = |why: String| {
        Error::definite(format!(
            "{} {}: not a Ferry repository marker: {why}",
            storage.url(),
            layout::MARKER
        ))
        .with_hint("the location holds something else; use another directory or prefix")
    };
    let head: Head = serde_json::from_slice(&b).map_err(|e| not_ours(e.to_string()))?;
    if head.kind.as_deref() != Some(MARKER_KIND) {
        return Err(not_ours("no `kind: ferry-backup-repository`".into()));
    }
    if let Some(f) = head.format {
        if f > layout::FORMAT {
            return Err(Error::definite(format!(
                "repository {} is in format {f} but this Ferry reads format {} at most",
                storage.url(),
                layout::FORMAT
            ))
            .with_hint("use a newer Ferry"));
        }
    }
    serde_json::from_slice(&b)
        .map(Some)
        .map_err(|e| not_ours(e.to_string()))
}
