//! Parallel apply's dependency keys read from real target catalogs: unique keys
//! (expression, prefix and exclusion indexes as table-wide keys), foreign keys to
//! their parents, and a child's change meeting its parent's on the keys they give.

use ferry_core::change::{RowOp, Shape};
use ferry_core::{Column, Endpoint, LogicalType, TableId, Value};
use ferry_engine::conn::Conn;
use ferry_engine::stream::parallel::keys::{row_keys, ParentRef, TableDeps};

async fn open(url: &str) -> Conn {
    Conn::connect(&Endpoint::parse(url, "NONE").unwrap())
        .await
        .unwrap()
}

fn int(name: &str) -> Column {
    Column::new(
        name,
        "int",
        LogicalType::Int {
            bytes: 4,
            unsigned: false,
        },
    )
}

fn sorted(mut u: Vec<Vec<String>>) -> Vec<Vec<String>> {
    u.sort();
    u
}

fn cols(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

/// The parent's delete of row 7 and the child's insert pointing at it share a key;
/// a child pointing elsewhere does not.
fn child_meets_parent(schema: &str, parent: &TableDeps, child: &TableDeps) {
    let p = TableId::new(schema, "parent");
    let c = TableId::new(schema, "child");
    let ps = Shape {
        table: p.clone(),
        columns: vec![int("pid"), int("name")],
        key: vec![0],
    };
    let cs = Shape {
        table: c.clone(),
        columns: vec![int("id"), int("parent_ref"), int("email")],
        key: vec![0],
    };
    let mut del = Vec::new();
    assert!(row_keys(
        &p,
        &ps,
        parent,
        &RowOp::Delete(vec![Value::Int(7), Value::Int(70)]),
        &mut del
    ));
    let mut ins = Vec::new();
    assert!(row_keys(
        &c,
        &cs,
        child,
        &RowOp::Insert(vec![Value::Int(1), Value::UInt(7), Value::Int(5)]),
        &mut ins
    ));
    let mut other = Vec::new();
    assert!(row_keys(
        &c,
        &cs,
        child,
        &RowOp::Insert(vec![Value::Int(2), Value::Int(8), Value::Int(6)]),
        &mut other
    ));
    assert!(del.iter().any(|k| ins.contains(k)), "{del:?} {ins:?}");
    assert!(!del.iter().any(|k| other.contains(k)));
}

#[tokio::test]
async fn postgres_catalog() {
    let db = ferry_testkit::fresh_pg_database("dep_keys").await;
    ferry_testkit::pg_exec(
        db.url(),
        "CREATE EXTENSION IF NOT EXISTS btree_gist;
         CREATE TABLE parent (pid int PRIMARY KEY, name int);
         CREATE TABLE child (
            id int PRIMARY KEY, parent_ref int REFERENCES parent (pid), email int UNIQUE,
            a int, b int, c int, code text, during int4range,
            CONSTRAINT ab UNIQUE (b, a) INCLUDE (c),
            EXCLUDE USING gist (during WITH &&));
         CREATE UNIQUE INDEX code_lower ON child (lower(code));
         CREATE UNIQUE INDEX c_partial ON child (c) WHERE c > 0;
         CREATE INDEX not_unique ON child (a);
         CREATE TABLE pair (x int, y int, PRIMARY KEY (x, y));
         CREATE TABLE grandchild (id int PRIMARY KEY, px int, py int,
            FOREIGN KEY (py, px) REFERENCES pair (y, x));",
    )
    .await;
    let mut c = open(db.url()).await;
    let t = |n: &str| TableId::new("public", n);
    let child = TableDeps::load(&mut c, &t("child")).await.unwrap();
    assert_eq!(
        sorted(child.unique.clone()),
        sorted(vec![
            cols(&["id"]),
            cols(&["email"]),
            cols(&["b", "a"]),
            cols(&["c"]),
            vec![], // lower(code) and the exclusion constraint
        ])
    );
    assert_eq!(
        child.parents,
        vec![ParentRef {
            columns: cols(&["parent_ref"]),
            parent: t("parent"),
            parent_columns: cols(&["pid"]),
        }]
    );
    let gc = TableDeps::load(&mut c, &t("grandchild")).await.unwrap();
    assert_eq!(
        gc.parents,
        vec![ParentRef {
            columns: cols(&["py", "px"]),
            parent: t("pair"),
            parent_columns: cols(&["y", "x"]),
        }]
    );
    let parent = TableDeps::load(&mut c, &t("parent")).await.unwrap();
    assert_eq!(parent.unique, vec![cols(&["pid"])]);
    assert!(parent.parents.is_empty());
    // without the table-wide (expression) key, rows of the child are independent
    let child = TableDeps {
        unique: child.unique.into_iter().filter(|u| !u.is_empty()).collect(),
        ..child
    };
    child_meets_parent("public", &parent, &child);
}

#[tokio::test]
async fn mariadb_catalog() {
    let db = ferry_testkit::fresh_mysql_database("dep_keys").await;
    ferry_testkit::mysql_exec(
        db.url(),
        "CREATE TABLE parent (pid int PRIMARY KEY, name int, KEY by_name (name)) ENGINE=InnoDB;
         CREATE TABLE child (
            id int PRIMARY KEY, parent_ref int, email int, a int, b int, code varchar(200),
            named int,
            UNIQUE KEY email (email), UNIQUE KEY ab (b, a), UNIQUE KEY code_prefix (code(10)),
            KEY not_unique (a),
            FOREIGN KEY fk_parent (parent_ref) REFERENCES parent (pid),
            FOREIGN KEY fk_named (named) REFERENCES parent (name)) ENGINE=InnoDB;",
    )
    .await;
    let mut c = open(db.url()).await;
    let t = |n: &str| TableId::new(db.name(), n);
    let child = TableDeps::load(&mut c, &t("child")).await.unwrap();
    assert_eq!(
        sorted(child.unique.clone()),
        sorted(vec![
            cols(&["id"]),
            cols(&["email"]),
            cols(&["b", "a"]),
            vec![], // a prefix of code
        ])
    );
    let mut parents = child.parents.clone();
    parents.sort_by(|a, b| a.columns.cmp(&b.columns));
    assert_eq!(
        parents,
        vec![
            ParentRef {
                columns: cols(&["named"]),
                parent: t("parent"),
                parent_columns: cols(&["name"]),
            },
            ParentRef {
                columns: cols(&["parent_ref"]),
                parent: t("parent"),
                parent_columns: cols(&["pid"]),
            },
        ]
    );
    // the parent's referenced columns count as keys (name is not unique)
    let parent = TableDeps::load(&mut c, &t("parent")).await.unwrap();
    assert_eq!(
        sorted(parent.unique.clone()),
        sorted(vec![cols(&["pid"]), cols(&["name"])])
    );
    let child = TableDeps {
        unique: child.unique.into_iter().filter(|u| !u.is_empty()).collect(),
        parents: child
            .parents
            .into_iter()
            .filter(|p| p.columns == cols(&["parent_ref"]))
            .collect(),
    };
    child_meets_parent(db.name(), &parent, &child);
}
