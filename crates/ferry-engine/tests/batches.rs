//! Readers hand batches over by size as well as by row count, so memory stays bounded
//! by bytes in flight whatever the row width.

use ferry_connector::ReadFormat;
use ferry_core::chunk::{Batch, BATCH_BYTES};
use ferry_core::{select::ObjectFilter, Endpoint};
use ferry_engine::conn::Conn;

async fn batch_sizes(url: &str) -> Vec<(usize, usize)> {
    let ep = Endpoint::parse(url, "NONE").unwrap();
    let mut conn = Conn::connect(&ep).await.unwrap();
    let filter = ObjectFilter::default();
    let tables = conn.tables(&filter, ep.database.as_deref()).await.unwrap();
    let t = tables.into_iter().find(|t| t.id.name == "wide").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let read = async {
        conn.read_chunk(&t, None, ReadFormat::Rows, &tx, 1000)
            .await
            .unwrap();
        drop(tx);
    };
    let collect = async {
        let mut sizes = Vec::new();
        while let Some(Batch::Rows(rows)) = rx.recv().await {
            let bytes = rows
                .iter()
                .map(|r| match &r[1] {
                    ferry_core::Value::Text(s) => s.len(),
                    ferry_core::Value::Bytes(b) => b.len(),
                    _ => 0,
                })
                .sum();
            sizes.push((rows.len(), bytes));
        }
        sizes
    };
    let ((), sizes) = tokio::join!(read, collect);
    sizes
}

fn assert_bounded(sizes: &[(usize, usize)]) {
    let rows: usize = sizes.iter().map(|s| s.0).sum();
    assert_eq!(rows, 30);
    assert!(
        sizes.len() >= 6,
        "30 rows of 1 MiB arrived in {} batches",
        sizes.len()
    );
    for (_, bytes) in sizes {
        assert!(
            *bytes <= BATCH_BYTES + (1 << 20),
            "a batch held {bytes} bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_batches_are_bounded_by_bytes() {
    let url = ferry_testkit::fresh_pg_database("wide").await;
    ferry_testkit::pg_exec(&url, "CREATE TABLE wide (id int PRIMARY KEY, v text); INSERT INTO wide SELECT g, repeat('x', 1048576) FROM generate_series(1, 30) g;").await;
    assert_bounded(&batch_sizes(&url).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_batches_are_bounded_by_bytes() {
    let url = ferry_testkit::fresh_mysql_database("wide").await;
    ferry_testkit::mysql_exec(&url, "CREATE TABLE wide (id int PRIMARY KEY, v longblob); INSERT INTO wide SELECT seq, REPEAT('x', 1048576) FROM seq_1_to_30;").await;
    assert_bounded(&batch_sizes(&url).await);
}
