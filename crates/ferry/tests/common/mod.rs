//! Helpers shared by the integration tests: fresh databases, running the `ferry`
//! binary, writing task files, querying a target.
#![allow(dead_code)]

use mysql_async::prelude::Queryable;
use std::process::Command;

pub struct Db {
    pub url: String,
    pub name: String,
    /// Drops the database when the test passes (None: not ours to drop).
    pub guard: Option<ferry_testkit::TestDb>,
}

pub async fn fresh(engine: &str, hint: &str) -> Db {
    let guard = match engine {
        "postgres" => ferry_testkit::fresh_pg_database(hint).await,
        _ => ferry_testkit::fresh_mysql_database(hint).await,
    };
    Db {
        url: guard.url().to_string(),
        name: guard.name().to_string(),
        guard: Some(guard),
    }
}

pub async fn query_lines(engine: &str, url: &str, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        if engine == "postgres" {
            let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            for m in c
                .simple_query(stmt)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e:?}"))
            {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    out.push(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("null").to_string())
                            .collect::<Vec<_>>()
                            .join("|"),
                    );
                }
            }
        } else {
            let mut c = mysql_async::Conn::from_url(url).await.unwrap();
            c.query_drop("SET NAMES utf8mb4").await.unwrap();
            let rows: Vec<mysql_async::Row> = c
                .query(stmt)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e:?}"));
            for r in rows {
                out.push(
                    r.unwrap_raw()
                        .into_iter()
                        .map(|v| match v {
                            Some(mysql_async::Value::Bytes(b)) => {
                                String::from_utf8_lossy(&b).into_owned()
                            }
                            Some(mysql_async::Value::NULL) | None => "null".into(),
                            Some(o) => o.as_sql(true),
                        })
                        .collect::<Vec<_>>()
                        .join("|"),
                );
            }
            c.disconnect().await.ok();
        }
    }
    out
}

pub fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("FERRY_LOG", "warn")
        .output()
        .expect("run ferry")
}

/// Writes a task file into `dir` and returns its path (the task is named after the file).
pub fn task_file(dir: &std::path::Path, source: &str, target: &str, extra: &str) -> String {
    let name = ferry_testkit::unique_name("").replace('_', "-");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!("name: {name}\nkind: migration\nmode: full\nsource: {source}\ntarget: {target}\n{extra}"),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// Text of a process's stdout and stderr.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The task name of a file written by [`task_file`].
pub fn task_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
