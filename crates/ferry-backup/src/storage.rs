//! The object store a repository lives in: a local directory or an S3-compatible
//! bucket, through the `object_store` crate (one code path for AWS S3 and every
//! S3-protocol server), with retries on transient errors and multipart uploads
//! for large objects. Paths are relative to the repository's root.
//!
//! Errors are Ferry errors naming the storage and the path: *transient* where
//! retrying can help (endpoint unreachable, throttling, server errors — after
//! `object_store`'s own retries), *definite* otherwise (bucket missing, access
//! denied, bad credentials), with a hint on how to fix it.

use bytes::Bytes;
use ferry_core::{Error, Result};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Objects larger than this are uploaded in parts (S3 multipart upload): a failed
/// part is retried alone, and no single request carries a huge body.
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;

/// The size of one part of a multipart upload (S3's minimum is 5 MiB).
pub const MULTIPART_PART: usize = 8 * 1024 * 1024;

/// The environment variables S3 credentials are read from (never from the URL:
/// URLs end up in task files, logs and process lists).
pub const S3_CREDENTIAL_ENV: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// A repository's storage.
#[derive(Clone, Debug)]
pub struct Storage {
    url: String,
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    /// A local directory; the store is made when the directory exists (a read of a
    /// directory that is not there finds nothing instead of creating it).
    Local {
        dir: PathBuf,
        store: Arc<OnceLock<Arc<LocalFileSystem>>>,
    },
    /// An S3-compatible bucket; `prefix` is the repository's root in it ("" or
    /// `a/b`).
    S3 {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

impl Storage {
    /// Opens `url`: `file:///abs/dir`, an absolute path, or
    /// `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, never from the URL).
    pub fn open(url: &str) -> Result<Storage> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            return open_s3(url, rest);
        }
        let dir = if url.starts_with("file:") {
            let parsed = url::Url::parse(url).map_err(|e| {
                Error::definite(format!("repository URL {url}: {e}"))
                    .with_hint("write a local repository as file:///absolute/dir")
            })?;
            if parsed
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(Error::definite(format!(
                    "repository URL {url}: a file URL names no host"
                ))
                .with_hint("write a local repository as file:///absolute/dir (three slashes)"));
            }
            parsed.to_file_path().map_err(|_| {
                Error::definite(format!("repository URL {url}: not an absolute path"))
                    .with_hint("write a local repository as file:///absolute/dir")
            })?
        } else if url.starts_with('/') {
            PathBuf::from(url)
        } else {
            return Err(
                Error::definite(format!("repository {url}: not a repository URL")).with_hint(
                    "use an absolute directory (/var/backups/ferry or file:///var/backups/ferry) \
                 or s3://bucket/prefix (with ?endpoint=… for an S3-compatible server)",
                ),
            );
        };
        let store = Arc::new(OnceLock::new());
        let s = Storage {
            url: url.trim_end_matches('/').to_string(),
            backend: Backend::Local { dir, store },
        };
        // Ready at once when the directory is there.
        if let Backend::Local { dir, .. } = &s.backend {
            if dir.is_dir() {
                s.local(false)?;
            }
        }
        Ok(s)
    }

    /// Opens the storage holding the single object `url` names (a dump file:
    /// `/dir/dump.sql`, `file:///dir/dump.sql`, `s3://bucket/dir/dump.sql?endpoint=…`):
    /// the storage of its directory and the object's name in it.
    pub fn open_object(url: &str) -> Result<(Storage, String)> {
        let url = url.trim();
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let no_name = || {
            Error::definite(format!("{}: names no file", shown_url_of_raw_any(url))).with_hint(
                "give the file's full path, e.g. s3://bucket/dir/dump.sql or /dir/dump.sql",
            )
        };
        let (dir, name) = base.rsplit_once('/').ok_or_else(no_name)?;
        if name.is_empty() || dir.ends_with(':') || dir.ends_with(":/") || dir == "s3:/" {
            return Err(no_name());
        }
        let dir = if dir.is_empty() { "/" } else { dir };
        let dir_url = match query {
            Some(q) => format!("{dir}?{q}"),
            None => dir.to_string(),
        };
        let name = percent_decode(name);
        Ok((Storage::open(&dir_url)?, name))
    }

    /// The storage as shown to people (no secrets).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True for an S3-compatible bucket (false: a local directory).
    pub fn is_s3(&self) -> bool {
        matches!(self.backend, Backend::S3 { .. })
    }

    /// Stores `data` at `path` (multipart above a few MiB), replacing what is there.
    pub async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        let (store, loc) = self.target(path, true)?;
        let len = data.len();
        if self.is_s3() && len > MULTIPART_THRESHOLD {
            let upload = store
                .put_multipart(&loc)
                .await
                .map_err(|e| self.error("store", path, e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
            w.put(data);
            w.finish().await.map_err(|e| self.error("store", path, e))?;
        } else {
            store
                .put(&loc, PutPayload::from_bytes(data))
                .await
                .map_err(|e| self.error("store", path, e))?;
        }
        tracing::debug!(storage = %self.url, path, bytes = len, "stored object");
        Ok(())
    }

    /// Stores `data` at `path` only when nothing is there yet (a conditional put:
    /// `If-None-Match: *` on S3, an exclusive link locally); false when something
    /// already was. Stores that cannot do it get a plain put. Two processes creating
    /// the same repository at once agree on one marker this way.
    pub async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        let (store, loc) = self.target(path, true)?;
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match store
            .put_opts(&loc, PutPayload::from_bytes(data.clone()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => {
                self.put(path, data).await.map(|_| true)
            }
            Err(e) => Err(self.error("store", path, e)),
        }
    }

    /// The object at `path`; `None` when there is none.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>> {
        let Some((store, loc)) = self.target_read(path)? else {
            return Ok(None);
        };
        let r = match store.get(&loc).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return self.not_found(path, e).map(|_| None),
            Err(e) => return Err(self.error("read", path, e)),
        };
        match r.bytes().await {
            Ok(b) => Ok(Some(b)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    /// Bytes `range` of the object at `path` (the end is clamped to the object's
    /// size); `None` when there is none. Reads a large object (a dump file) in
    /// pieces, in bounded memory.
    pub async fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Bytes>> {
        let Some((store, loc)) = self.target_read(path)? else {
            return Ok(None);
        };
        let Some(size) = self.size(path).await? else {
            return Ok(None);
        };
        let end = range.end.min(size);
        if range.start >= end {
            return Ok(Some(Bytes::new()));
        }
        match store.get_range(&loc, range.start..end).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if is_not_found(&e) => self.not_found(path, e).map(|_| None),
            Err(e) => Err(self.error("read", path, e)),
        }
    }

    /// The size of the object at `path`; `None` when there is none.
    pub async fn size(&self, path: &str) -> Result<Option<u64>> {
        let Some((store, loc)) = self.target_read(path)? else {
            return Ok(None);
        };
        match store.head(&loc).await {
            Ok(m) => Ok(Some(m.size)),
            Err(e) if is_not_found(&e) => self.not_found(path, e).map(|_| None),
            Err(e) => Err(self.error("look at", path, e)),
        }
    }

    /// Every object under `prefix` (recursively): path relative to the root, size;
    /// sorted by path. `prefix` is a directory ("" for everything).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let prefix = prefix.trim_matches('/');
        let Some((store, loc)) = self.target_read(prefix)? else {
            return Ok(Vec::new());
        };
        let loc = (!loc.as_ref().is_empty()).then_some(loc);
        let metas: Vec<object_store::ObjectMeta> =
            match store.list(loc.as_ref()).try_collect().await {
                Ok(v) => v,
                Err(e) if is_not_found(&e) => {
                    self.not_found(prefix, e)?;
                    Vec::new()
                }
                Err(e) => return Err(self.error("list", prefix, e)),
            };
        let mut out: Vec<(String, u64)> = metas
            .into_iter()
            .filter_map(|m| self.relative(m.location.as_ref()).map(|p| (p, m.size)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The names of the "directories" directly under `prefix` (common prefixes of
    /// the objects below it), sorted: a repository's clusters and sets are found
    /// without listing every data file.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.trim_matches('/');
        let Some((store, loc)) = self.target_read(prefix)? else {
            return Ok(Vec::new());
        };
        let loc = (!loc.as_ref().is_empty()).then_some(loc);
        let r = match store.list_with_delimiter(loc.as_ref()).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => {
                self.not_found(prefix, e)?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(self.error("list", prefix, e)),
        };
        let mut out: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes the object at `path` (none there is fine).
    pub async fn delete(&self, path: &str) -> Result<()> {
        let Some((store, loc)) = self.target_read(path)? else {
            return Ok(());
        };
        match store.delete(&loc).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => self.not_found(path, e),
            Err(e) => Err(self.error("remove", path, e)),
        }
    }

    /// Removes every object under the directory `prefix` (and, in a local
    /// directory, the emptied directories).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let prefix = prefix.trim_matches('/');
        for (p, _) in self.list(prefix).await? {
            self.delete(&p).await?;
        }
        if let Backend::Local { dir, .. } = &self.backend {
            let d = dir.join(prefix);
            if !prefix.is_empty() && d.is_dir() {
                std::fs::remove_dir_all(&d).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(Error::definite(format!(
                            "{}: cannot remove {}: {e}",
                            self.url,
                            d.display()
                        )))
                    }
                })?;
            }
        }
        Ok(())
    }

    /// The local store (made now when `create`, creating the directory).
    fn local(&self, create: bool) -> Result<Option<Arc<LocalFileSystem>>> {
        let Backend::Local { dir, store } = &self.backend else {
            return Ok(None);
        };
        if let Some(s) = store.get() {
            return Ok(Some(s.clone()));
        }
        if !dir.is_dir() {
            if !create {
                return Ok(None);
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::definite(format!(
                    "repository {}: cannot create the directory: {e}",
                    self.url
                ))
                .with_hint("check the path and that Ferry may write there")
            })?;
        }
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
            Error::definite(format!("repository {}: {e}", self.url))
                .with_hint("check the path and that Ferry may read it")
        })?;
        let fs = Arc::new(fs.with_automatic_cleanup(true));
        Ok(Some(store.get_or_init(|| fs).clone()))
    }

    /// The store and location of `path`, for writing.
    fn target(&self, path: &str, create: bool) -> Result<(Arc<dyn ObjectStore>, ObjPath)> {
        match self.target_opt(path, create)? {
            Some(t) => Ok(t),
            None => Err(Error::definite(format!(
                "repository {}: the directory is not there",
                self.url
            ))),
        }
    }

    /// The store and location of `path`, for reading: `None` for a local
    /// directory that does not exist (nothing is there).
    fn target_read(&self, path: &str) -> Result<Option<(Arc<dyn ObjectStore>, ObjPath)>> {
        self.target_opt(path, false)
    }

    fn target_opt(
        &self,
        path: &str,
        create: bool,
    ) -> Result<Option<(Arc<dyn ObjectStore>, ObjPath)>> {
        let path = path.trim_matches('/');
        match &self.backend {
            Backend::Local { .. } => {
                let Some(fs) = self.local(create)? else {
                    return Ok(None);
                };
                let loc = self.parse_path(path)?;
                Ok(Some((fs as Arc<dyn ObjectStore>, loc)))
            }
            Backend::S3 { store, prefix } => {
                let full = match (prefix.is_empty(), path.is_empty()) {
                    (true, _) => path.to_string(),
                    (false, true) => prefix.clone(),
                    (false, false) => format!("{prefix}/{path}"),
                };
                Ok(Some((store.clone(), self.parse_path(&full)?)))
            }
        }
    }

    fn parse_path(&self, p: &str) -> Result<ObjPath> {
        ObjPath::parse(p).map_err(|e| {
            Error::definite(format!(
                "repository {}: invalid object path {p:?}: {e}",
                self.url
            ))
        })
    }

    /// `full` (an object location) relative to the repository's root.
    fn relative(&self, full: &str) -> Option<String> {
        match &self.backend {
            Backend::Local { .. } => Some(full.to_string()),
            Backend::S3 { prefix, .. } if prefix.is_empty() => Some(full.to_string()),
            Backend::S3 { prefix, .. } => full
                .strip_prefix(prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string),
        }
    }

    /// A "not found" that means nothing is at the path is fine (`Ok`); one that
    /// means the bucket itself is missing is an error.
    fn not_found(&self, path: &str, e: object_store::Error) -> Result<()> {
        let text = error_text(&e);
        if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
            return Err(self.error("read", path, e));
        }
        Ok(())
    }

    /// A Ferry error for a failed operation `what` on `path`.
    fn error(&self, what: &str, path: &str, e: object_store::Error) -> Error {
        let text = error_text(&e);
        let path = if path.is_empty() { "/" } else { path };
        let msg = match s3_code(&text) {
            Some((code, _)) if code == "NoSuchBucket" => format!(
                "repository {}: cannot {what} {path}: the bucket does not exist",
                self.url
            ),
            Some((code, m)) => format!(
                "repository {}: cannot {what} {path}: S3 error {code}: {m} ({})",
                self.url,
                redact(first_line(&text))
            ),
            None => format!(
                "repository {}: cannot {what} {path}: {}",
                self.url,
                redact(first_line(&text))
            ),
        };
        classify(self.is_s3(), &e, &text, msg)
    }
}

/// The full text of an `object_store` error, with its sources (the S3 error code
/// is in the innermost one).
fn error_text(e: &object_store::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

/// The first line of an error text, without a trailing XML declaration (S3
/// error bodies follow on the next lines), at most 400 characters.
fn first_line(text: &str) -> &str {
    let l = text.lines().next().unwrap_or("");
    let l = l
        .trim_end()
        .trim_end_matches(r#"<?xml version="1.0" encoding="utf-8"?>"#)
        .trim_end_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
        .trim_end()
        .trim_end_matches(':');
    match l.char_indices().nth(400) {
        Some((i, _)) => &l[..i],
        None => l,
    }
}

/// The S3 error code and message of an error body in `text`.
fn s3_code(text: &str) -> Option<(String, String)> {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let a = text.find(&open)? + open.len();
        let b = text[a..].find(&close)? + a;
        Some(text[a..b].trim().to_string())
    };
    let code = tag("Code")?;
    Some((code, tag("Message").unwrap_or_default()))
}

/// Removes anything that looks like a credential from an error text (object_store
/// never puts secrets there, but request URLs may carry signed query strings).
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        if word.contains("X-Amz-Signature=") || word.contains("X-Amz-Credential=") {
            out.push_str("[redacted-url] ");
        } else {
            out.push_str(word);
        }
    }
    out
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// Transient vs definite, with the hint a person acts on.
fn classify(s3: bool, e: &object_store::Error, text: &str, msg: String) -> Error {
    use object_store::Error as E;
    let has = |k: &str| text.contains(k);
    if has("NoSuchBucket") || has("bucket does not exist") {
        return Error::definite(msg)
            .with_hint("create the bucket, or fix the bucket name in the URL");
    }
    if matches!(e, E::PermissionDenied { .. } | E::Unauthenticated { .. })
        || has("AccessDenied")
        || has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("InvalidToken")
        || has("ExpiredToken")
        || has("Permission denied")
    {
        let hint = if s3 {
            "access denied: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and \
             AWS_SESSION_TOKEN) and that the credentials may read and write the bucket"
        } else {
            "permission denied: check that Ferry's user may read and write the directory"
        };
        return Error::definite(msg).with_hint(hint);
    }
    match e {
        E::NotFound { .. } => Error::definite(msg),
        E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => Error::definite(msg),
        _ if !s3 => Error::definite(msg).with_hint("check the disk (space, permissions)"),
        _ => {
            if has("error sending request") || has("onnect") || has("timed out") || has("dns error")
            {
                Error::transient(msg).with_hint(
                    "the S3 endpoint is unreachable: check the endpoint in the URL and \
                     that the server is running",
                )
            } else {
                Error::transient(msg)
            }
        }
    }
}

/// Opens an `s3://` URL.
fn open_s3(url: &str, rest: &str) -> Result<Storage> {
    let bad = |m: &str| {
        Error::definite(format!("repository URL {}: {m}", shown_url_of_raw(url))).with_hint(
            "write it as s3://bucket/prefix?endpoint=http://host:port&region=us-east-1; \
             credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN",
        )
    };
    let (hostpath, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, prefix) = match hostpath.split_once('/') {
        Some((a, b)) => (a, b.trim_matches('/')),
        None => (hostpath, ""),
    };
    if authority.contains('@') {
        return Err(Error::definite(format!(
            "repository URL {}: credentials in the URL are refused (URLs end up in task \
             files, logs and process lists)",
            shown_url_of_raw(url)
        ))
        .with_hint(
            "remove them from the URL and set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             (and AWS_SESSION_TOKEN) in Ferry's environment",
        ));
    }
    let bucket = authority;
    if bucket.is_empty() {
        return Err(bad("no bucket"));
    }
    let mut endpoint: Option<String> = None;
    let mut region: Option<String> = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "endpoint" => endpoint = Some(v),
            "region" => region = Some(v),
            k if k.contains("key")
                || k.contains("secret")
                || k.contains("token")
                || k.contains("password") =>
            {
                return Err(Error::definite(format!(
                    "repository URL {}: credentials in the URL ({k}) are refused",
                    shown_url_of_raw(url)
                ))
                .with_hint(
                    "remove them from the URL and set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in Ferry's environment",
                ));
            }
            k => {
                return Err(bad(&format!(
                    "unknown parameter {k:?} (known: endpoint, region)"
                )))
            }
        }
    }
    let region = region
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|s| !s.is_empty()))
        .or_else(|| {
            std::env::var("AWS_DEFAULT_REGION")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "us-east-1".to_string());
    let env = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    let (Some(key_id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    else {
        return Err(Error::definite(format!(
            "repository {}: no S3 credentials",
            shown_s3(bucket, prefix, endpoint.as_deref(), &region)
        ))
        .with_hint("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials) in Ferry's environment"));
    };
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&region)
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_retry(RetryConfig {
            backoff: Default::default(),
            max_retries: 5,
            retry_timeout: Duration::from_secs(120),
        });
    if let Some(t) = env("AWS_SESSION_TOKEN") {
        b = b.with_token(t);
    }
    let mut opts = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300));
    if let Some(ep) = &endpoint {
        let u = url::Url::parse(ep).map_err(|e| bad(&format!("endpoint {ep:?}: {e}")))?;
        match u.scheme() {
            "http" => opts = opts.with_allow_http(true),
            "https" => {}
            s => return Err(bad(&format!("endpoint {ep:?}: scheme {s} (http or https)"))),
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(Error::definite(format!(
                "repository URL {}: credentials in the endpoint are refused",
                shown_s3(bucket, prefix, None, &region)
            ))
            .with_hint("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in Ferry's environment"));
        }
        b = b
            .with_endpoint(ep.trim_end_matches('/'))
            .with_virtual_hosted_style_request(false);
    }
    b = b.with_client_options(opts);
    let store = b.build().map_err(|e| bad(&redact(&error_text(&e))))?;
    Ok(Storage {
        url: shown_s3(bucket, prefix, endpoint.as_deref(), &region),
        backend: Backend::S3 {
            store: Arc::new(store),
            prefix: prefix.to_string(),
        },
    })
}

/// The URL as shown: bucket, prefix, endpoint and region; nothing else.
fn shown_s3(bucket: &str, prefix: &str, endpoint: Option<&str>, region: &str) -> String {
    let mut s = format!("s3://{bucket}");
    if !prefix.is_empty() {
        s.push('/');
        s.push_str(prefix);
    }
    let mut q = Vec::new();
    if let Some(e) = endpoint {
        q.push(format!("endpoint={e}"));
    }
    q.push(format!("region={region}"));
    s.push('?');
    s.push_str(&q.join("&"));
    s
}

/// A raw `s3://` URL with any user-info and query removed, for errors about it.
fn shown_url_of_raw(url: &str) -> String {
    let rest = url.strip_prefix("s3://").unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or("");
    let rest = match rest.split_once('/') {
        Some((auth, path)) => format!("{}/{path}", auth.rsplit('@').next().unwrap_or("")),
        None => rest.rsplit('@').next().unwrap_or("").to_string(),
    };
    format!("s3://{rest}")
}

/// Any URL with user-info and query removed, for errors about it.
fn shown_url_of_raw_any(url: &str) -> String {
    if url.starts_with("s3://") {
        shown_url_of_raw(url)
    } else {
        url.split('?').next().unwrap_or("").to_string()
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_refuse_credentials_and_never_show_them() {
        let e = Storage::open("s3://AKIA:sekrit@bucket/p?endpoint=http://127.0.0.1:1").unwrap_err();
        assert!(e.message.contains("credentials in the URL"), "{e}");
        assert!(!e.to_string().contains("sekrit"), "{e}");
        let e = Storage::open("s3://bucket/p?secret_access_key=sekrit").unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
        let e = Storage::open("s3://bucket/p?colour=blue").unwrap_err();
        assert!(e.message.contains("unknown parameter"), "{e}");
        let e = Storage::open("relative/dir").unwrap_err();
        assert!(e.message.contains("not a repository URL"), "{e}");
    }

    #[test]
    fn s3_url_shown_without_secrets() {
        assert_eq!(
            shown_s3("b", "x/y", Some("http://127.0.0.1:9"), "us-east-1"),
            "s3://b/x/y?endpoint=http://127.0.0.1:9&region=us-east-1"
        );
        assert_eq!(shown_url_of_raw("s3://k:s@b/p?x=1"), "s3://b/p");
    }

    #[tokio::test]
    async fn local_directory_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("repo");
        let s = Storage::open(&format!("file://{}", root.display())).unwrap();
        assert_eq!(s.get("a/b").await.unwrap(), None);
        assert!(s.list("").await.unwrap().is_empty());
        assert!(!root.exists(), "reading must not create the directory");
        s.put("a/b", Bytes::from_static(b"hello")).await.unwrap();
        s.put("a/c/d", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(s.get("a/b").await.unwrap().unwrap(), &b"hello"[..]);
        assert_eq!(s.size("a/b").await.unwrap(), Some(5));
        assert_eq!(
            s.list("a").await.unwrap(),
            vec![("a/b".to_string(), 5), ("a/c/d".to_string(), 1)]
        );
        assert_eq!(s.list_dirs("a").await.unwrap(), vec!["c".to_string()]);
        assert!(!s
            .put_if_absent("a/b", Bytes::from_static(b"no"))
            .await
            .unwrap());
        assert!(s
            .put_if_absent("a/new", Bytes::from_static(b"yes"))
            .await
            .unwrap());
        assert_eq!(s.get("a/b").await.unwrap().unwrap(), &b"hello"[..]);
        s.delete("a/new").await.unwrap();
        s.delete("a/b").await.unwrap();
        s.delete("a/b").await.unwrap();
        assert_eq!(s.size("a/b").await.unwrap(), None);
        s.delete_prefix("a").await.unwrap();
        assert!(s.list("").await.unwrap().is_empty());
        assert!(s.list_dirs("").await.unwrap().is_empty());
        s.put("d/dump.sql", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let (o, name) = Storage::open_object(&format!("{}/d/dump.sql", root.display())).unwrap();
        assert_eq!(name, "dump.sql");
        assert_eq!(
            o.get_range(&name, 2..5).await.unwrap().unwrap(),
            &b"234"[..]
        );
        assert_eq!(
            o.get_range(&name, 8..50).await.unwrap().unwrap(),
            &b"89"[..]
        );
        assert_eq!(o.get_range(&name, 20..50).await.unwrap().unwrap(), &b""[..]);
        assert_eq!(o.get_range("nothing", 0..5).await.unwrap(), None);
        let (o, name) = Storage::open_object("s3://b/dir/x.sql?endpoint=http://127.0.0.1:1")
            .unwrap_or_else(|e| {
                // No credentials in this process: the split still happened first.
                assert!(e.message.contains("no S3 credentials"), "{e}");
                (s.clone(), "x.sql".into())
            });
        assert_eq!(name, "x.sql");
        drop(o);
        assert!(Storage::open_object("s3://bucket").is_err());
        assert!(Storage::open_object("/").is_err());
        let p = Storage::open(root.to_str().unwrap()).unwrap();
        p.put("z", Bytes::from_static(b"1")).await.unwrap();
        assert_eq!(s.get("z").await.unwrap().unwrap(), &b"1"[..]);
    }
}
