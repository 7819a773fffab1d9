//! The repository against real storages: a local directory and an S3-protocol
//! server (moto, started by the test on 127.0.0.1). Every scenario runs on both.

use bytes::Bytes;
use ferry_backup::codec::{self, Change, FileWriter};
use ferry_backup::layout;
use ferry_backup::manifest::{FileEntry, FileKind, Manifest, SetKind, TableEntry};
use ferry_backup::repo::Repo;
use ferry_backup::storage::Storage;
use ferry_core::change::Cell;
use ferry_core::{Table, Value};
use ferry_testkit::s3::S3Server;

/// Where a scenario runs; keeps the directory / server alive.
enum Place {
    Local(tempfile::TempDir),
    S3(S3Server),
}

impl Place {
    fn local() -> Place {
        Place::Local(
            tempfile::Builder::new()
                .prefix("ferry-repo-test-")
                .tempdir()
                .unwrap(),
        )
    }

    fn s3() -> Place {
        let s = S3Server::start();
        s.set_env();
        s.create_bucket("backups");
        Place::S3(s)
    }

    /// A fresh repository location named `name`.
    fn url(&self, name: &str) -> String {
        match self {
            Place::Local(d) => format!("file://{}/{name}", d.path().display()),
            Place::S3(s) => s.url("backups", &format!("ferry/{name}")),
        }
    }
}

fn rows(n: i64) -> Vec<Vec<Value>> {
    (0..n)
        .map(|i| {
            vec![
                Value::Int(i),
                Value::Text(format!("row {i}")),
                Value::F64(i as f64 / 3.0),
                Value::Bytes(vec![i as u8; 5]),
            ]
        })
        .collect()
}

/// Writes a complete full set with two data files and one changes file.
async fn write_set(repo: &Repo, cluster: &str, id: &str) -> Manifest {
    let mut files = Vec::new();
    for (chunk, r) in [(0u32, rows(100)), (1, rows(7))] {
        let mut w = FileWriter::rows();
        w.add_rows(&r).unwrap();
        let p = w.finish(repo.cipher.as_ref()).unwrap();
        let path = layout::data_file(0, chunk, 0);
        repo.put_file(cluster, id, &path, p.bytes.clone())
            .await
            .unwrap();
        files.push(FileEntry {
            path,
            table: 0,
            kind: FileKind::Data,
            lo: None,
            hi: None,
            rows: p.count,
            bytes: p.bytes.len() as u64,
            raw_bytes: p.raw_bytes,
            sha256: p.sha256,
        });
    }
    let mut w = FileWriter::changes();
    w.add_change(&Change::Put(vec![
        Cell::Value(Value::Int(1)),
        Cell::Unchanged,
    ]))
    .unwrap();
    w.add_change(&Change::Delete(vec![Value::Int(2)])).unwrap();
    let p = w.finish(repo.cipher.as_ref()).unwrap();
    let path = layout::changes_file(0, 0);
    repo.put_file(cluster, id, &path, p.bytes.clone())
        .await
        .unwrap();
    files.push(FileEntry {
        path,
        table: 0,
        kind: FileKind::Changes,
        lo: None,
        hi: None,
        rows: p.count,
        bytes: p.bytes.len() as u64,
        raw_bytes: p.raw_bytes,
        sha256: p.sha256,
    });
    let m = Manifest {
        format: layout::FORMAT,
        id: id.into(),
        cluster: cluster.into(),
        kind: SetKind::Full,
        method: "logical".into(),
        parent: None,
        chain: id.into(),
        engine: "postgres".into(),
        server_version: "17".into(),
        source: "postgres://u@h/db".into(),
        start_position: None,
        position: Some("lsn:0/1".into()),
        consistent_at: None,
        started_at: "2026-12-02T07:00:00Z".into(),
        finished_at: "2026-12-02T07:01:00Z".into(),
        encrypted: repo.encrypted(),
        compression: "zstd".into(),
        tables: vec![TableEntry {
            table: Table::default(),
            create_text: None,
            rows: 107,
            digest: None,
        }],
        files,
    };
    repo.write_manifest(&m).await.unwrap();
    m
}

/// Reads every file of `m` back through the codec.
async fn read_all(repo: &Repo, m: &Manifest) -> (usize, usize) {
    let (mut r, mut c) = (0, 0);
    for f in &m.files {
        let b = repo.read_file(m, f).await.unwrap();
        let what = format!("set {}: file {}", m.id, f.path);
        match f.kind {
            FileKind::Data => {
                r += codec::read_rows(&b, repo.cipher.as_ref(), &what)
                    .unwrap()
                    .len()
            }
            FileKind::Changes => {
                c += codec::read_changes(&b, repo.cipher.as_ref(), &what)
                    .unwrap()
                    .len()
            }
        }
    }
    (r, c)
}

async fn storage_basics(place: Place) {
    let s = Storage::open(&place.url("basics")).unwrap();
    assert_eq!(s.get("a/x").await.unwrap(), None);
    assert_eq!(s.size("a/x").await.unwrap(), None);
    assert!(s.list("").await.unwrap().is_empty());
    s.put("a/x", Bytes::from_static(b"one")).await.unwrap();
    s.put("a/b/y", Bytes::from_static(b"two!")).await.unwrap();
    s.put("c", Bytes::from_static(b"")).await.unwrap();
    assert!(!s
        .put_if_absent("c", Bytes::from_static(b"z"))
        .await
        .unwrap());
    assert!(s
        .put_if_absent("d", Bytes::from_static(b"z"))
        .await
        .unwrap());
    assert_eq!(s.get("c").await.unwrap().unwrap(), &b""[..]);
    s.delete("d").await.unwrap();
    assert_eq!(s.get("a/x").await.unwrap().unwrap(), &b"one"[..]);
    assert_eq!(s.size("a/b/y").await.unwrap(), Some(4));
    assert_eq!(
        s.list("a").await.unwrap(),
        vec![("a/b/y".to_string(), 4), ("a/x".to_string(), 3)]
    );
    assert_eq!(s.list("").await.unwrap().len(), 3);
    assert_eq!(s.list_dirs("").await.unwrap(), vec!["a".to_string()]);
    assert_eq!(s.list_dirs("a").await.unwrap(), vec!["b".to_string()]);
    // Replacing.
    s.put("a/x", Bytes::from_static(b"uno")).await.unwrap();
    assert_eq!(s.get("a/x").await.unwrap().unwrap(), &b"uno"[..]);
    // Above the multipart threshold (S3: a multipart upload of 3 parts).
    let big: Vec<u8> = (0..(20 * 1024 * 1024 + 123))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    s.put("big/object", Bytes::from(big.clone())).await.unwrap();
    assert_eq!(s.size("big/object").await.unwrap(), Some(big.len() as u64));
    let back = s.get("big/object").await.unwrap().unwrap();
    assert!(back == big, "large object differs after the round trip");
    let piece = s
        .get_range("big/object", 9 * 1024 * 1024..9 * 1024 * 1024 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&piece[..], &big[9 * 1024 * 1024..9 * 1024 * 1024 + 10]);
    let (o, name) = Storage::open_object(&place.url("basics/big/object")).unwrap();
    assert_eq!(name, "object");
    assert_eq!(o.size(&name).await.unwrap(), Some(big.len() as u64));
    s.delete("a/x").await.unwrap();
    s.delete("a/x").await.unwrap();
    assert_eq!(s.get("a/x").await.unwrap(), None);
    s.delete_prefix("a").await.unwrap();
    assert_eq!(
        s.list("").await.unwrap(),
        vec![
            ("big/object".to_string(), big.len() as u64),
            ("c".to_string(), 0)
        ]
    );
    // Another repository beside it sees none of it.
    let other = Storage::open(&place.url("basics2")).unwrap();
    assert!(other.list("").await.unwrap().is_empty());
}

async fn sets_lifecycle(place: Place) {
    let url = place.url("sets");
    let e = Repo::open(&url, None).await.unwrap_err();
    assert!(e.message.contains("no Ferry backup repository"), "{e}");
    let repo = Repo::create_or_open(&url, None).await.unwrap();
    assert!(!repo.encrypted());
    let marker = repo.storage.get(layout::MARKER).await.unwrap().unwrap();
    let mj: serde_json::Value = serde_json::from_slice(&marker).unwrap();
    assert_eq!(mj["format"], layout::FORMAT);
    let a = write_set(&repo, "shop", "20261202T070000Z-F0001").await;
    let b = write_set(&repo, "shop", "20261202T080000Z-F0002").await;
    let c = write_set(&repo, "crm", "20261202T073000Z-F0003").await;
    // A running set: progress only.
    repo.put_json(
        &layout::progress("shop", "20261202T090000Z-F0004"),
        &serde_json::json!({"files": 1}),
    )
    .await
    .unwrap();
    let repo = Repo::open(&url, None).await.unwrap();
    let ids = |v: Vec<Manifest>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(repo.sets(None).await.unwrap()),
        vec![a.id.clone(), c.id.clone(), b.id.clone()]
    );
    assert_eq!(
        ids(repo.sets(Some("shop")).await.unwrap()),
        vec![a.id.clone(), b.id.clone()]
    );
    assert!(repo.sets(Some("nothing")).await.unwrap().is_empty());
    assert_eq!(repo.find_set(&c.id).await.unwrap(), c);
    assert_eq!(read_all(&repo, &b).await, (107, 2));
    assert_eq!(
        repo.incomplete_sets(None).await.unwrap(),
        vec![("shop".to_string(), "20261202T090000Z-F0004".to_string())]
    );
    let p: serde_json::Value = repo
        .get_json(&layout::progress("shop", "20261202T090000Z-F0004"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p["files"], 1);
    let e = repo.find_set("20261202T090000Z-F0004").await.unwrap_err();
    assert!(e.message.contains("incomplete"), "{e}");
    let e = repo.find_set("20261202T000000Z-Fffff").await.unwrap_err();
    assert!(
        e.message.contains("no backup set 20261202T000000Z-Fffff"),
        "{e}"
    );
    // Removal: gone from the listing, the files too.
    repo.delete_set("shop", &a.id).await.unwrap();
    assert_eq!(
        ids(repo.sets(Some("shop")).await.unwrap()),
        vec![b.id.clone()]
    );
    assert!(repo
        .storage
        .list(&layout::set_dir("shop", &a.id))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(repo.incomplete_sets(Some("shop")).await.unwrap().len(), 1);
    // An interrupted removal (manifest gone, files left) shows as incomplete and
    // is finished by the next.
    repo.storage
        .delete(&layout::manifest("shop", &b.id))
        .await
        .unwrap();
    assert_eq!(repo.incomplete_sets(Some("shop")).await.unwrap().len(), 2);
    repo.delete_set("shop", &b.id).await.unwrap();
    repo.delete_set("shop", "20261202T090000Z-F0004")
        .await
        .unwrap();
    assert!(repo.incomplete_sets(None).await.unwrap().is_empty());
    assert_eq!(ids(repo.sets(None).await.unwrap()), vec![c.id.clone()]);
    // create_or_open of an existing one opens it.
    let again = Repo::create_or_open(&url, None).await.unwrap();
    assert_eq!(again.sets(None).await.unwrap().len(), 1);
}

async fn damage_is_named(place: Place) {
    let repo = Repo::create_or_open(&place.url("damage"), None)
        .await
        .unwrap();
    let m = write_set(&repo, "shop", "20261202T070000Z-F0001").await;
    let f = &m.files[0];
    let path = format!("{}/{}", layout::set_dir("shop", &m.id), f.path);
    let good = repo.storage.get(&path).await.unwrap().unwrap();
    // One flipped byte: same size, other checksum.
    let mut bad = good.to_vec();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    repo.storage.put(&path, Bytes::from(bad)).await.unwrap();
    let e = repo.read_file(&m, f).await.unwrap_err();
    assert!(
        e.message.contains(&format!(
            "set {}: file data/0/000000-000.fzr checksum mismatch",
            m.id
        )),
        "{e}"
    );
    assert!(e.message.contains(&f.sha256), "{e}");
    // Truncated.
    repo.storage
        .put(&path, good.slice(..good.len() - 1))
        .await
        .unwrap();
    let e = repo.read_file(&m, f).await.unwrap_err();
    assert!(
        e.message.contains("file data/0/000000-000.fzr is damaged"),
        "{e}"
    );
    // Missing.
    repo.storage.delete(&path).await.unwrap();
    let e = repo.read_file(&m, f).await.unwrap_err();
    assert!(
        e.message.contains(&format!(
            "set {}: file data/0/000000-000.fzr is missing",
            m.id
        )),
        "{e}"
    );
    // Restored: reads again.
    repo.storage.put(&path, good).await.unwrap();
    assert_eq!(read_all(&repo, &m).await, (107, 2));
}

async fn encrypted_repository(place: Place) {
    let url = place.url("secret");
    let repo = Repo::create_or_open(&url, Some("correct horse"))
        .await
        .unwrap();
    assert!(repo.encrypted());
    let m = write_set(&repo, "shop", "20261202T070000Z-F0001").await;
    // Nothing but the marker is readable without the key.
    let marker = repo.storage.get(layout::MARKER).await.unwrap().unwrap();
    let mj: serde_json::Value = serde_json::from_slice(&marker).unwrap();
    assert_eq!(mj["encryption"]["cipher"], "xchacha20-poly1305");
    assert!(!String::from_utf8_lossy(&marker).contains("correct horse"));
    let raw_manifest = repo
        .storage
        .get(&layout::manifest("shop", &m.id))
        .await
        .unwrap()
        .unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&raw_manifest).is_err());
    assert!(!String::from_utf8_lossy(&raw_manifest).contains("postgres"));
    // Right key.
    let again = Repo::open(&url, Some("correct horse")).await.unwrap();
    assert_eq!(again.sets(None).await.unwrap(), vec![m.clone()]);
    assert_eq!(read_all(&again, &m).await, (107, 2));
    // Wrong key, no key.
    let e = Repo::open(&url, Some("battery staple")).await.unwrap_err();
    assert!(e.message.starts_with("wrong repository key for "), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("FERRY_REPO_KEY"), "{e}");
    assert!(!e.to_string().contains("battery"), "{e}");
    let e = Repo::create_or_open(&url, None).await.unwrap_err();
    assert!(
        e.message.contains("is encrypted and no key was given"),
        "{e}"
    );
    // A tampered sealed file with a matching manifest entry (an attacker who can
    // also rewrite checksums) still fails: authentication, naming the file.
    let f = &m.files[0];
    let path = format!("{}/{}", layout::set_dir("shop", &m.id), f.path);
    let mut bad = repo.storage.get(&path).await.unwrap().unwrap().to_vec();
    let i = bad.len() - 20;
    bad[i] ^= 0x80;
    let e = codec::read_rows(
        &bad,
        again.cipher.as_ref(),
        "set X: file data/0/000000-000.fzr",
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("set X: file data/0/000000-000.fzr: authentication failed"),
        "{e}"
    );
    // And a plain repository's files are refused by a wrong key's cipher.
    let other = Repo::create_or_open(&place.url("secret2"), Some("other"))
        .await
        .unwrap();
    let good = repo.storage.get(&path).await.unwrap().unwrap();
    assert!(codec::read_rows(&good, other.cipher.as_ref(), "f").is_err());
}

async fn copy_to(
    from_place: &Place,
    to_place: &Place,
    from_key: Option<&str>,
    to_key: Option<&str>,
) {
    let from = Repo::create_or_open(&from_place.url("copy-from"), from_key)
        .await
        .unwrap();
    let to = Repo::create_or_open(&to_place.url("copy-to"), to_key)
        .await
        .unwrap();
    let m = write_set(&from, "shop", "20261202T070000Z-F0001").await;
    let copied = from.copy_set(&to, "shop", &m.id).await.unwrap();
    assert_eq!(copied.encrypted, to_key.is_some());
    assert_eq!(copied.files.len(), m.files.len());
    if from_key.is_none() && to_key.is_none() {
        assert_eq!(copied, m, "a plain copy is byte-identical");
    }
    let reopened = Repo::open(&to_place.url("copy-to"), to_key).await.unwrap();
    let found = reopened.find_set(&m.id).await.unwrap();
    assert_eq!(found, copied);
    assert_eq!(read_all(&reopened, &found).await, (107, 2));
    // Copying again leaves it as it is.
    assert_eq!(from.copy_set(&to, "shop", &m.id).await.unwrap(), copied);
    let e = from
        .copy_set(&to, "shop", "20261202T000000Z-Fffff")
        .await
        .unwrap_err();
    assert!(e.message.contains("20261202T000000Z-Fffff"), "{e}");
}

#[tokio::test]
async fn local_storage_basics() {
    storage_basics(Place::local()).await;
}

#[tokio::test]
async fn s3_storage_basics() {
    storage_basics(Place::s3()).await;
}

#[tokio::test]
async fn local_sets_lifecycle() {
    sets_lifecycle(Place::local()).await;
}

#[tokio::test]
async fn s3_sets_lifecycle() {
    sets_lifecycle(Place::s3()).await;
}

#[tokio::test]
async fn local_damage_is_named() {
    damage_is_named(Place::local()).await;
}

#[tokio::test]
async fn s3_damage_is_named() {
    damage_is_named(Place::s3()).await;
}

#[tokio::test]
async fn local_encrypted_repository() {
    encrypted_repository(Place::local()).await;
}

#[tokio::test]
async fn s3_encrypted_repository() {
    encrypted_repository(Place::s3()).await;
}

#[tokio::test]
async fn copy_set_local_to_s3_plain() {
    copy_to(&Place::local(), &Place::s3(), None, None).await;
}

#[tokio::test]
async fn copy_set_local_plain_to_s3_encrypted() {
    copy_to(&Place::local(), &Place::s3(), None, Some("k2")).await;
}

#[tokio::test]
async fn copy_set_local_encrypted_to_local_other_key() {
    copy_to(&Place::local(), &Place::local(), Some("k1"), Some("k2")).await;
}

#[tokio::test]
async fn s3_errors_are_classified() {
    let s3 = Place::s3();
    let Place::S3(server) = &s3 else {
        unreachable!()
    };
    // Bucket missing: definite, says so.
    let s = Storage::open(&server.url("nobucket", "x")).unwrap();
    let e = s.put("a", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.message.ends_with("the bucket does not exist"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("create the bucket"),
        "{e}"
    );
    let e = Repo::open(&server.url("nobucket", "x"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bucket does not exist"), "{e}");
    // Endpoint unreachable: transient, names the endpoint.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("s3://backups/x?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let s = Storage::open(&url).unwrap();
    let t = std::time::Instant::now();
    let e = s.get("a").await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("unreachable"),
        "{e}"
    );
    assert!(t.elapsed().as_secs() < 60, "retries took {:?}", t.elapsed());
    // The shown URL has no secret.
    assert!(!s.url().contains("ferrytestsecret"));
    // No credentials in the environment: refused at open.
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    let e = Storage::open(&server.url("backups", "x")).unwrap_err();
    assert!(e.message.contains("no S3 credentials"), "{e}");
}

#[tokio::test]
async fn s3_unknown_credentials_are_refused_definitely() {
    // moto checks credentials from the third request on (the readiness probe and
    // the bucket creation are free): the test's made-up key is unknown to it.
    let server = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "2")]);
    server.set_env();
    server.create_bucket("backups");
    let s = Storage::open(&server.url("backups", "x")).unwrap();
    let e = s.put("a", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.message.contains("cannot store a"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("AWS_ACCESS_KEY_ID"),
        "{e}"
    );
    assert!(
        !e.to_string().contains(ferry_testkit::s3::SECRET_ACCESS_KEY),
        "{e}"
    );
    let e = Repo::create_or_open(&server.url("backups", "x"), None)
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
}
