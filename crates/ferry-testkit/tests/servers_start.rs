//! The throwaway servers start with the settings the engine relies on.

use mysql_async::prelude::Queryable;

#[tokio::test]
async fn postgres_has_logical_wal() {
    let url = ferry_testkit::fresh_pg_database("smoke").await;
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = c.query_one("SHOW wal_level", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "logical");
}

#[tokio::test]
async fn mariadb_has_row_binlog() {
    let url = ferry_testkit::fresh_mysql_database("smoke").await;
    let mut c = mysql_async::Conn::from_url(&url).await.unwrap();
    let v: Option<(String, String)> = c
        .query_first("SELECT @@binlog_format, @@binlog_row_metadata")
        .await
        .unwrap();
    assert_eq!(v, Some(("ROW".into(), "FULL".into())));
}
