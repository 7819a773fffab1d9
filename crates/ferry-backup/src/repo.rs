//! A repository: a storage with Ferry's marker (format version, cipher salt and key
//! check) and the sets in it ([`crate::layout`]). Every read of a file checks its
//! SHA-256 against the manifest and names the file when it is missing or damaged.

use crate::cipher::Cipher;
use crate::manifest::{FileEntry, Manifest};
use crate::storage::Storage;
use bytes::Bytes;
use ferry_core::{Error, Result};

/// The environment variable holding the repository passphrase.
pub const KEY_ENV: &str = "FERRY_REPO_KEY";

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
    pub async fn open(url: &str, _key: Option<&str>) -> Result<Repo> {
        Err(Error::definite(format!("{url}: not built yet")))
    }

    /// Opens the repository at `url`, creating it (encrypted when `key` is given)
    /// when the location holds none yet.
    pub async fn create_or_open(url: &str, _key: Option<&str>) -> Result<Repo> {
        Err(Error::definite(format!("{url}: not built yet")))
    }

    /// Stores a JSON document (sealed when the repository is encrypted).
    pub async fn put_json<T: serde::Serialize + Sync>(&self, path: &str, _value: &T) -> Result<()> {
        Err(Error::definite(format!("{path}: not built yet")))
    }

    /// Reads a JSON document [`Repo::put_json`] stored; `None` when absent.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        Err(Error::definite(format!("{path}: not built yet")))
    }

    /// Stores a finished file of `set` at `rel` (relative to the set's directory).
    pub async fn put_file(&self, cluster: &str, set: &str, rel: &str, _bytes: Bytes) -> Result<()> {
        Err(Error::definite(format!(
            "{cluster}/{set}/{rel}: not built yet"
        )))
    }

    /// The stored bytes of a file of `m`, checked against its size and SHA-256:
    /// missing or damaged files are errors naming the file.
    pub async fn read_file(&self, m: &Manifest, f: &FileEntry) -> Result<Bytes> {
        Err(Error::definite(format!(
            "{}/{}: not built yet",
            m.id, f.path
        )))
    }

    /// Writes a set's manifest (last: the set is complete from then on).
    pub async fn write_manifest(&self, m: &Manifest) -> Result<()> {
        Err(Error::definite(format!("{}: not built yet", m.id)))
    }

    /// The complete sets (with a manifest) of `cluster` (every cluster for `None`),
    /// oldest first.
    pub async fn sets(&self, _cluster: Option<&str>) -> Result<Vec<Manifest>> {
        Err(Error::definite("not built yet"))
    }

    /// The complete set `id`, in whichever cluster; an error naming the id when the
    /// repository has none (or only an incomplete one).
    pub async fn find_set(&self, id: &str) -> Result<Manifest> {
        Err(Error::definite(format!("{id}: not built yet")))
    }

    /// Sets without a manifest (running, or died): cluster and set id.
    pub async fn incomplete_sets(&self, _cluster: Option<&str>) -> Result<Vec<(String, String)>> {
        Err(Error::definite("not built yet"))
    }

    /// Removes a set: its manifest first (from then on it is incomplete and
    /// invisible), then its files; an interrupted removal is finished by the next.
    pub async fn delete_set(&self, cluster: &str, set: &str) -> Result<()> {
        Err(Error::definite(format!("{cluster}/{set}: not built yet")))
    }

    /// Copies complete set `set` of `cluster` to `to` (secondary backup): every file,
    /// each checked by SHA-256 as read back from `to`, the manifest last (sealed
    /// with `to`'s key).
    pub async fn copy_set(&self, to: &Repo, cluster: &str, set: &str) -> Result<Manifest> {
        Err(Error::definite(format!(
            "{cluster}/{set} → {}: not built yet",
            to.storage.url()
        )))
    }
}
