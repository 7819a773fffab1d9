//! The object store a repository lives in: a local directory or an S3-compatible
//! bucket, through the `object_store` crate (one code path for AWS S3 and every
//! S3-protocol server), with retries on transient errors and multipart uploads
//! for large objects. Paths are relative to the repository's root.

use bytes::Bytes;
use ferry_core::{Error, Result};

/// A repository's storage.
#[derive(Clone, Debug)]
pub struct Storage {
    url: String,
}

impl Storage {
    /// Opens `url`: `file:///abs/dir`, an absolute path, or
    /// `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never from the URL).
    pub fn open(url: &str) -> Result<Storage> {
        Err(Error::definite(format!("storage {url}: not built yet")))
    }

    /// The storage as shown to people (no secrets).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stores `data` at `path` (multipart above a few MiB), replacing what is there.
    pub async fn put(&self, path: &str, _data: Bytes) -> Result<()> {
        Err(Error::definite(format!("{path}: not built yet")))
    }

    /// The object at `path`; `None` when there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>> {
        Err(Error::definite(format!("{path}: not built yet")))
    }

    /// The size of the object at `path`; `None` when there is none.
    pub async fn size(&self, path: &str) -> Result<Option<u64>> {
        Err(Error::definite(format!("{path}: not built yet")))
    }

    /// Every object under `prefix` (recursively): path relative to the root, size;
    /// sorted by path.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Err(Error::definite(format!("{prefix}: not built yet")))
    }

    /// Removes the object at `path` (none there is fine).
    pub async fn delete(&self, path: &str) -> Result<()> {
        Err(Error::definite(format!("{path}: not built yet")))
    }
}
