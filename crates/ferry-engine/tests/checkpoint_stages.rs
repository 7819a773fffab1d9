//! A table's stage is replaced in one statement: a kill -9 at any instant leaves the
//! old stage or the new one, never none (a missing stage made the resumed copy create
//! the table again and fail on "already exists" for good — found by ferry-chaos).

use ferry_core::{Endpoint, TableId};
use ferry_engine::checkpoint::{CheckpointStore, TableStage};
use ferry_engine::conn::Conn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

async fn open(url: &str) -> Conn {
    let ep = Endpoint::parse(url, "NONE").unwrap();
    let mut c = Conn::connect(&ep).await.unwrap();
    c.ensure().await.unwrap();
    c
}

async fn a_stage_is_never_missing_while_it_changes(url: &str, task: &str) {
    let mut writer = open(url).await;
    let table = TableId::new("s", "t");
    writer
        .set_stage(task, &table, TableStage::Created)
        .await
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (url, task, done) = (url.to_string(), task.to_string(), done.clone());
        tokio::spawn(async move {
            let mut c = open(&url).await;
            let (mut reads, mut missing) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                reads += 1;
                if c.stages(&task).await.unwrap().is_empty() {
                    missing += 1;
                }
            }
            (reads, missing)
        })
    };
    for i in 0..400 {
        let stage = if i % 2 == 0 {
            TableStage::Indexed
        } else {
            TableStage::Created
        };
        writer.set_stage(task, &table, stage).await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (reads, missing) = reader.await.unwrap();
    assert!(reads > 0);
    assert_eq!(missing, 0, "{missing} of {reads} reads found no stage");
    assert_eq!(
        writer.stages(task).await.unwrap().get("s.t"),
        Some(&TableStage::Created)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_stage_is_never_missing_while_it_changes() {
    let db = ferry_testkit::fresh_pg_database("stages").await;
    a_stage_is_never_missing_while_it_changes(db.url(), db.name()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_a_stage_is_never_missing_while_it_changes() {
    let db = ferry_testkit::fresh_mysql_database("stages").await;
    a_stage_is_never_missing_while_it_changes(db.url(), db.name()).await;
}
