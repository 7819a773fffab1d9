//! Which rows a change touches, reduced to hashes: two source transactions whose
//! key sets are disjoint can be applied on different target connections at once.
//!
//! A change touches its row's identity (the key the log identifies it by, before
//! and after an update that changes it), every unique key of the target table (two
//! transactions inserting the same unique value must keep their order), and the
//! parent rows its foreign keys point to (a child inserted while its parent is
//! deleted elsewhere must keep its order). A change to a table without a key
//! cannot be keyed: its transaction is a barrier. This is MySQL's WRITESET
//! dependency tracking (`binlog_transaction_dependency_tracking = WRITESET`, which
//! hashes the primary and unique keys and the foreign-key parents of every row
//! image), computed on the applier's side from the target's catalog.
//!
//! What makes two keys equal:
//! - A key hashes the *target* table, the column names and each value's canonical
//!   text, pairs sorted by column name. A foreign key hashes the **parent's** table
//!   and the parent's column names with the child's values, so it equals the hash
//!   the parent row's own identity or unique key gives, whatever the child's
//!   columns are called.
//! - Canonical text makes values equal on the target hash alike whatever variant the
//!   source gave: `Int(5)`, `UInt(5)`, `Decimal("5.00")`, `F64(5.0)` and `Bool`
//!   (`1`/`0`) are one number; times drop trailing fractional zeros; text is folded
//!   as a case- and accent-insensitive collation with trailing-space padding
//!   (MySQL's defaults) compares it — lower case, trailing spaces dropped, Latin-1
//!   and Latin Extended-A letters to their base letter. Folding only adds
//!   collisions, and a collision only adds an order that was not needed.
//!
//! When a value cannot be known the change is a barrier (`row_keys` returns false)
//! rather than risk a missed order:
//! - A PostgreSQL source with the default replica identity logs an update's old
//!   row not at all and a delete's row as its key columns only (the others NULL).
//!   The old values of a unique key or foreign key that is not made of identity
//!   columns are then unknown: such an update or delete is a barrier. With
//!   `REPLICA IDENTITY FULL` (and from MySQL, whose images are FULL) they are keyed.
//!   An old image whose non-identity columns are all NULL is taken as identity-only.
//! - A new image's unchanged (TOAST) column is read from the old image when that is
//!   whole; otherwise a unique or foreign key over it is unknown.
//! - A unique key containing every identity column adds nothing (two rows with equal
//!   values would be the same row) and is skipped; a unique key with a NULL value is
//!   skipped (NULLs never collide in a unique index), as is a foreign key with a
//!   NULL (it references nothing).
//! - A unique index over something not computable from a row (an expression, a
//!   column prefix, an exclusion constraint, a column the log does not carry) is kept
//!   as an empty column list: every change of the table gets the same key for it,
//!   so the table's changes keep their order among themselves (other tables still
//!   run in parallel). A partial unique index is taken as covering every row.

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
    /// Unique indexes and constraints, the primary key included (the source's row
    /// identity need not be the target's primary key), and — on MySQL/MariaDB,
    /// where a foreign key may reference columns that are not unique — the column
    /// sets other tables' foreign keys reference: their columns. An empty list is
    /// an index the applier cannot compute from a row (an expression or a prefix):
    /// every change of the table conflicts on it.
    pub unique: Vec<Vec<String>>,
    /// Foreign keys, to the rows they reference. A caller whose target sessions do
    /// not enforce foreign keys (PostgreSQL `session_replication_role = replica`,
    /// MySQL `foreign_key_checks = 0`) may clear this: without checks, cascades or
    /// key-share locks, a child and its parent can be written in either order.
    pub parents: Vec<ParentRef>,
}

impl TableDeps {
    /// Reads the unique keys and foreign keys of target table `target`.
    pub async fn load(conn: &mut Conn, target: &TableId) -> Result<TableDeps> {
        let dialect = conn.dialect();
        let mut deps = TableDeps::default();
        if let Some(sql) = dialect.unique_keys_sql(target) {
            let rows = conn
                .query_text(&sql)
                .await
                .map_err(|e| e.context(format!("reading the unique keys of {target}")))?;
            for (_, group) in groups(&rows) {
                let cols: Option<Vec<String>> =
                    group.iter().map(|r| r.get(1).cloned().flatten()).collect();
                let cols = cols.unwrap_or_default();
                let mut sorted = cols.clone();
                sorted.sort();
                let seen = deps.unique.iter().any(|u| {
                    let mut s = u.clone();
                    s.sort();
                    s == sorted
                });
                if !seen {
                    deps.unique.push(cols);
                }
            }
        }
        if let Some(sql) = dialect.foreign_keys_sql(target) {
            let rows = conn
                .query_text(&sql)
                .await
                .map_err(|e| e.context(format!("reading the foreign keys of {target}")))?;
            for (_, group) in groups(&rows) {
                let cell = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten();
                let (Some(schema), Some(name)) = (cell(group[0], 2), cell(group[0], 3)) else {
                    continue;
                };
                let pairs: Option<Vec<(String, String)>> = group
                    .iter()
                    .map(|r| Some((cell(r, 1)?, cell(r, 4)?)))
                    .collect();
                let Some(pairs) = pairs else { continue };
                let (columns, parent_columns) = pairs.into_iter().unzip();
                deps.parents.push(ParentRef {
                    columns,
                    parent: TableId::new(schema, name),
                    parent_columns,
                });
            }
        }
        Ok(deps)
    }
}

/// Consecutive catalog rows with the same first cell (one index or constraint).
fn groups(rows: &[Vec<Option<String>>]) -> Vec<(String, Vec<&Vec<Option<String>>>)> {
    let mut out: Vec<(String, Vec<&Vec<Option<String>>>)> = Vec::new();
    for r in rows {
        let name = r.first().cloned().flatten().unwrap_or_default();
        match out.last_mut() {
            Some((n, g)) if *n == name => g.push(r),
            _ => out.push((name, vec![r])),
        }
    }
    out
}

/// The key of the row of `table` whose columns `cols` hold `values`; the pairs are
/// ordered by column name so that a foreign key and the parent's own key, which may
/// list their columns in different orders, hash alike.
///
/// Column names are compared in ASCII lower case: a MySQL catalog may spell a
/// name in another case than the log, and a collision only adds order.
pub fn key_of(table: &TableId, cols: &[(&str, &Value)]) -> Key {
    let mut pairs: Vec<(String, &Value)> = cols
        .iter()
        .map(|(c, v)| (c.to_ascii_lowercase(), *v))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut h);
    let mut buf = String::new();
    for (c, v) in pairs {
        c.hash(&mut h);
        buf.clear();
        canonical(v, &mut buf);
        buf.hash(&mut h);
    }
    h.finish()
}

/// A value's text for hashing, into `out`: values equal on the target give the
/// same text (see the module doc); distinct values may too.
fn canonical(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::Null => out.push_str("\u{0}NULL"),
        Value::Bool(b) => out.push(if *b { '1' } else { '0' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        // Display is the shortest text that reads back as the same float, and
        // prints integral values without a fraction (`5`, like Int(5))
        Value::F32(f) if *f == 0.0 => out.push('0'),
        Value::F64(f) if *f == 0.0 => out.push('0'),
        Value::F32(f) => {
            let _ = write!(out, "{f}");
        }
        Value::F64(f) => {
            let _ = write!(out, "{f}");
        }
        Value::Decimal(s) => decimal(s, out),
        Value::Text(s) => fold_text(s, out),
        Value::Bytes(b) => {
            for x in b {
                let _ = write!(out, "{x:02x}");
            }
        }
        Value::Time(s) | Value::Timestamp(s) | Value::TimestampTz(s) => {
            out.push_str(trim_fraction(s))
        }
        Value::Date(s) | Value::Interval(s) | Value::Json(s) | Value::Bits(s) => out.push_str(s),
    }
}

/// `-0012.3400` → `-12.34`, `5.000` → `5`, `-0.0` → `0`; `NaN`/`Infinity` as they are.
fn decimal(s: &str, out: &mut String) {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        out.push_str(s);
        return;
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.is_empty() && frac.is_empty() {
        out.push('0');
        return;
    }
    if neg {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
}

/// `12:00:00.500000` → `12:00:00.5`, `… 00:00:00.000` → `… 00:00:00`.
fn trim_fraction(s: &str) -> &str {
    match s.rfind('.') {
        Some(dot) if s[dot + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            let t = s.trim_end_matches('0');
            t.strip_suffix('.').unwrap_or(t)
        }
        _ => s,
    }
}

/// Base letters of U+0100..U+017F (Latin Extended-A), upper and lower case alike;
/// `1` stands for `ij`, `2` for `oe`.
const LATIN_EXT_A: &[u8; 128] = b"aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii11jjkkkllllllllllnnnnnnnnnoooooo22rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

/// Text as a case- and accent-insensitive collation with space padding compares it:
/// lower case, Latin accents dropped (`ß`, `ss` and `s` alike), trailing spaces
/// dropped, and control characters (ignorable in Unicode collations) left out.
fn fold_text(s: &str, out: &mut String) {
    let start = out.len();
    for c in s.trim_end_matches(' ').chars().flat_map(char::to_lowercase) {
        let base: &str = match c as u32 {
            0x00..=0x1f | 0x7f => "",
            0xdf => "s",
            0xe0..=0xe5 => "a",
            0xe6 => "ae",
            0xe7 => "c",
            0xe8..=0xeb => "e",
            0xec..=0xef => "i",
            0xf0 => "d",
            0xf1 => "n",
            0xf2..=0xf6 | 0xf8 => "o",
            0xf9..=0xfc => "u",
            0xfd | 0xff => "y",
            n @ 0x100..=0x17f => match LATIN_EXT_A[(n - 0x100) as usize] {
                b'1' => "ij",
                b'2' => "oe",
                b => {
                    out.push(b as char);
                    continue;
                }
            },
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(base);
    }
    // `ss` and `ß` are one letter in some collations, `s` and `ß` in others
    let folded: String = out[start..].to_string();
    out.truncate(start);
    let mut prev_s = false;
    for c in folded.chars() {
        if c == 's' && prev_s {
            continue;
        }
        prev_s = c == 's';
        out.push(c);
    }
}

/// A column of a row image as far as the log tells it.
#[derive(Clone, Copy)]
enum Slot<'a> {
    /// The column's value.
    Known(&'a Value),
    /// Not in the image (an identity-only old image, an unchanged TOAST value).
    Unknown,
}

/// A row image: the value of column `i` of the shape, as far as known.
type Image<'a> = dyn Fn(usize) -> Slot<'a> + 'a;

/// Position in `shape` of the target column `name` (columns keep their names from
/// source to target; a catalog may spell a MySQL column name in another case).
fn position(shape: &Shape, name: &str) -> Option<usize> {
    shape
        .columns
        .iter()
        .position(|c| c.name == name)
        .or_else(|| {
            let mut m = shape
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.name.eq_ignore_ascii_case(name));
            match (m.next(), m.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        })
}

/// Whether an old image holds the whole row: a PostgreSQL source with the default
/// replica identity sends the identity columns only, the others as NULL.
fn whole(shape: &Shape, row: &[Value]) -> bool {
    let mut others = (0..shape.columns.len())
        .filter(|i| !shape.key.contains(i))
        .peekable();
    others.peek().is_none() || others.any(|i| row.get(i).is_some_and(|v| !v.is_null()))
}

/// An old image's columns: an identity-only image knows its identity columns only.
fn old_image<'a>(shape: &Shape, row: &'a [Value]) -> Vec<Slot<'a>> {
    let full = whole(shape, row);
    (0..shape.columns.len())
        .map(|i| match row.get(i) {
            Some(v) if full || shape.key.contains(&i) => Slot::Known(v),
            _ => Slot::Unknown,
        })
        .collect()
}

/// The keys of one row image; false when one cannot be known.
fn image_keys(
    target: &TableId,
    shape: &Shape,
    deps: &TableDeps,
    img: &Image<'_>,
    out: &mut Vec<Key>,
) -> bool {
    let name = |i: usize| shape.columns[i].name.as_str();
    // identity
    let mut pairs: Vec<(&str, &Value)> = Vec::with_capacity(shape.key.len());
    for &i in &shape.key {
        match img(i) {
            Slot::Known(v) => pairs.push((name(i), v)),
            Slot::Unknown => return false,
        }
    }
    out.push(key_of(target, &pairs));
    // unique keys
    'unique: for cols in &deps.unique {
        let idx: Option<Vec<usize>> = cols.iter().map(|c| position(shape, c)).collect();
        let idx = match idx {
            Some(idx) if !idx.is_empty() => idx,
            // not computable from the row: the table's changes conflict on it
            _ => {
                out.push(key_of(target, &[]));
                continue;
            }
        };
        if shape.key.iter().all(|k| idx.contains(k)) {
            continue; // implied by the identity
        }
        pairs.clear();
        let mut unknown = false;
        for (c, &i) in cols.iter().zip(&idx) {
            match img(i) {
                Slot::Known(v) if v.is_null() => continue 'unique,
                Slot::Known(v) => pairs.push((c.as_str(), v)),
                Slot::Unknown => unknown = true,
            }
        }
        if unknown {
            return false;
        }
        out.push(key_of(target, &pairs));
    }
    // foreign-key parents, hashed as the parent's own key
    'parents: for p in &deps.parents {
        pairs.clear();
        let mut unknown = false;
        for (c, pc) in p.columns.iter().zip(&p.parent_columns) {
            let Some(i) = position(shape, c) else {
                return false;
            };
            match img(i) {
                Slot::Known(v) if v.is_null() => continue 'parents,
                Slot::Known(v) => pairs.push((pc.as_str(), v)),
                Slot::Unknown => unknown = true,
            }
        }
        if unknown {
            return false;
        }
        out.push(key_of(&p.parent, &pairs));
    }
    true
}

/// Appends to `out` the keys that change `op` of `shape`'s table (target table
/// `target`) touches. Returns false when the change cannot be keyed (a table
/// without a key, a unique or foreign key whose value the log does not carry): its
/// transaction must be applied as a barrier. `out` may then hold some of its keys.
pub fn row_keys(
    target: &TableId,
    shape: &Shape,
    deps: &TableDeps,
    op: &RowOp,
    out: &mut Vec<Key>,
) -> bool {
    if shape.key.is_empty() {
        return false;
    }
    let start = out.len();
    let old_image = |row| old_image(shape, row);
    let ok = match op {
        RowOp::Insert(row) => {
            let img = |i: usize| row.get(i).map_or(Slot::Unknown, Slot::Known);
            image_keys(target, shape, deps, &img, out)
        }
        RowOp::Delete(row) => {
            let slots = old_image(row);
            let img = |i: usize| slots[i];
            image_keys(target, shape, deps, &img, out)
        }
        RowOp::Update { old, new } => {
            // no old image (PostgreSQL, key unchanged): its identity is the new one's
            let old_slots: Vec<Slot<'_>> = match old {
                Some(o) => old_image(o),
                None => (0..shape.columns.len())
                    .map(|i| match new.get(i) {
                        Some(Cell::Value(v)) if shape.key.contains(&i) => Slot::Known(v),
                        _ => Slot::Unknown,
                    })
                    .collect(),
            };
            let new_img = |i: usize| match new.get(i) {
                Some(Cell::Value(v)) => Slot::Known(v),
                // unchanged: the old value, when known
                _ => old_slots.get(i).copied().unwrap_or(Slot::Unknown),
            };
            let old_img = |i: usize| old_slots[i];
            image_keys(target, shape, deps, &old_img, out)
                && image_keys(target, shape, deps, &new_img, out)
        }
    };
    if ok {
        let mut mine = out.split_off(start);
        mine.sort_unstable();
        mine.dedup();
        out.extend(mine);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{Column, LogicalType};

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

    fn text(name: &str) -> Column {
        Column::new(name, "text", LogicalType::Text)
    }

    fn shape() -> Shape {
        Shape {
            table: TableId::new("s", "t"),
            columns: vec![int("id"), text("v")],
            key: vec![0],
        }
    }

    fn keys(t: &TableId, s: &Shape, d: &TableDeps, op: &RowOp) -> Vec<Key> {
        let mut out = Vec::new();
        assert!(row_keys(t, s, d, op, &mut out), "{op:?} is keyed");
        out
    }

    fn meet(a: &[Key], b: &[Key]) -> bool {
        a.iter().any(|k| b.contains(k))
    }

    #[test]
    fn same_row_same_key_other_rows_differ() {
        let (t, s, d) = (TableId::new("s", "t"), shape(), TableDeps::default());
        let a = keys(
            &t,
            &s,
            &d,
            &RowOp::Insert(vec![Value::Int(1), Value::Text("x".into())]),
        );
        let b = keys(&t, &s, &d, &RowOp::Delete(vec![Value::Int(1), Value::Null]));
        let c = keys(&t, &s, &d, &RowOp::Delete(vec![Value::Int(2), Value::Null]));
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

    #[test]
    fn equal_values_of_other_variants_hash_alike() {
        let t = TableId::new("s", "t");
        let k = |v: Value| key_of(&t, &[("id", &v)]);
        let five = k(Value::Int(5));
        for v in [
            Value::UInt(5),
            Value::Decimal("5.000".into()),
            Value::Decimal("+005".into()),
            Value::F64(5.0),
            Value::F32(5.0),
        ] {
            assert_eq!(k(v.clone()), five, "{v:?}");
        }
        assert_ne!(k(Value::Int(6)), five);
        assert_eq!(k(Value::Decimal("-0.00".into())), k(Value::Int(0)));
        assert_eq!(k(Value::F64(-0.0)), k(Value::Int(0)));
        assert_eq!(
            k(Value::Decimal("-12.340".into())),
            k(Value::Decimal("-12.34".into()))
        );
        assert_ne!(
            k(Value::Decimal("12.34".into())),
            k(Value::Decimal("1.234".into()))
        );
        assert_eq!(k(Value::Bool(true)), k(Value::Int(1)));
        assert_eq!(
            k(Value::Timestamp("2026-01-02 03:04:05.500000".into())),
            k(Value::Timestamp("2026-01-02 03:04:05.5".into()))
        );
        assert_eq!(
            k(Value::Timestamp("2026-01-02 03:04:05.000".into())),
            k(Value::Timestamp("2026-01-02 03:04:05".into()))
        );
        assert_ne!(
            k(Value::Timestamp("2026-01-02 03:04:05".into())),
            k(Value::Timestamp("2026-01-02 03:04:06".into()))
        );
        // NULL is not the text "NULL"
        assert_ne!(k(Value::Null), k(Value::Text("NULL".into())));
    }

    #[test]
    fn text_folds_as_insensitive_collations_compare() {
        let t = TableId::new("s", "t");
        let k = |s: &str| key_of(&t, &[("v", &Value::Text(s.into()))]);
        assert_eq!(k("Abc"), k("abc  "));
        assert_eq!(k("Émile"), k("emile"));
        assert_eq!(k("Łódź"), k("lodz"));
        assert_eq!(k("straße"), k("strasse"));
        assert_eq!(k("Ærø"), k("aero"));
        assert_ne!(k("abc"), k("abd"));
        assert_ne!(k(" abc"), k("abc"));
        let ext: &[u8] = LATIN_EXT_A;
        assert_eq!(ext.len(), 128);
        // spot checks of the table's alignment
        let base = |c: char| {
            let mut s = String::new();
            fold_text(&c.to_string(), &mut s);
            s
        };
        for (c, b) in [
            ('Ā', "a"),
            ('č', "c"),
            ('Đ', "d"),
            ('ě', "e"),
            ('ğ', "g"),
            ('ħ', "h"),
            ('ı', "i"),
            ('Ĳ', "ij"),
            ('ĵ', "j"),
            ('ĸ', "k"),
            ('ł', "l"),
            ('ŋ', "n"),
            ('ő', "o"),
            ('Œ', "oe"),
            ('ř', "r"),
            ('š', "s"),
            ('ŧ', "t"),
            ('ų', "u"),
            ('ŵ', "w"),
            ('Ÿ', "y"),
            ('ž', "z"),
            ('ſ', "s"),
        ] {
            assert_eq!(base(c), b, "{c}");
        }
    }

    /// parent p(pid) and child c(id, parent_ref → p.pid)
    fn parent_child() -> (TableId, Shape, TableId, Shape, TableDeps) {
        let p = TableId::new("app", "parent");
        let ps = Shape {
            table: TableId::new("src", "parent_src"),
            columns: vec![int("pid"), text("name")],
            key: vec![0],
        };
        let c = TableId::new("app", "child");
        let cs = Shape {
            table: TableId::new("src", "child"),
            columns: vec![int("id"), int("parent_ref")],
            key: vec![0],
        };
        let cd = TableDeps {
            unique: vec![vec!["id".into()]],
            parents: vec![ParentRef {
                columns: vec!["parent_ref".into()],
                parent: p.clone(),
                parent_columns: vec!["pid".into()],
            }],
        };
        (p, ps, c, cs, cd)
    }

    #[test]
    fn a_child_insert_collides_with_its_parents_delete() {
        let (p, ps, c, cs, cd) = parent_child();
        let pd = TableDeps {
            unique: vec![vec!["pid".into()]],
            parents: vec![],
        };
        let parent_delete = keys(
            &p,
            &ps,
            &pd,
            &RowOp::Delete(vec![Value::Int(7), Value::Text("seven".into())]),
        );
        // the child's column is named differently and its value is another variant
        let child_insert = keys(
            &c,
            &cs,
            &cd,
            &RowOp::Insert(vec![Value::Int(1), Value::UInt(7)]),
        );
        assert!(meet(&parent_delete, &child_insert));
        let other_child = keys(
            &c,
            &cs,
            &cd,
            &RowOp::Insert(vec![Value::Int(2), Value::Int(8)]),
        );
        assert!(!meet(&parent_delete, &other_child));
        // a child pointing nowhere (NULL) meets no parent
        let orphan = keys(
            &c,
            &cs,
            &cd,
            &RowOp::Insert(vec![Value::Int(3), Value::Null]),
        );
        assert_eq!(orphan.len(), 1);
        // a child moved to another parent meets both parents
        let moved = keys(
            &c,
            &cs,
            &cd,
            &RowOp::Update {
                old: Some(vec![Value::Int(2), Value::Int(8)]),
                new: vec![Cell::Value(Value::Int(2)), Cell::Value(Value::Int(7))],
            },
        );
        assert!(meet(&moved, &parent_delete));
        assert!(meet(&moved, &other_child));
    }

    /// t(id primary key, email unique, note)
    fn with_unique() -> (TableId, Shape, TableDeps) {
        let t = TableId::new("s", "users");
        let s = Shape {
            table: t.clone(),
            columns: vec![int("id"), text("email"), text("note")],
            key: vec![0],
        };
        let d = TableDeps {
            unique: vec![vec!["id".into()], vec!["email".into()]],
            parents: vec![],
        };
        (t, s, d)
    }

    fn row(id: i64, email: Option<&str>, note: Option<&str>) -> Vec<Value> {
        let t = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.into()));
        vec![Value::Int(id), t(email), t(note)]
    }

    fn cells(r: Vec<Value>) -> Vec<Cell> {
        r.into_iter().map(Cell::Value).collect()
    }

    #[test]
    fn unique_swap_keeps_order() {
        let (t, s, d) = with_unique();
        // T1 moves row 1 from a to x, T2 then gives row 2 the freed a
        let t1 = keys(
            &t,
            &s,
            &d,
            &RowOp::Update {
                old: Some(row(1, Some("a"), Some("n"))),
                new: cells(row(1, Some("x"), Some("n"))),
            },
        );
        let t2 = keys(
            &t,
            &s,
            &d,
            &RowOp::Update {
                old: Some(row(2, Some("b"), Some("n"))),
                new: cells(row(2, Some("A"), Some("n"))),
            },
        );
        assert!(meet(&t1, &t2));
        // an insert of another email on another row is independent
        let t3 = keys(&t, &s, &d, &RowOp::Insert(row(3, Some("c"), None)));
        assert!(!meet(&t1, &t3));
        assert!(!meet(&t2, &t3));
        // the primary key (implied by the identity) adds no key of its own
        assert_eq!(t3.len(), 2);
    }

    #[test]
    fn null_unique_values_do_not_collide() {
        let (t, s, d) = with_unique();
        let a = keys(&t, &s, &d, &RowOp::Insert(row(1, None, Some("n"))));
        let b = keys(&t, &s, &d, &RowOp::Insert(row(2, None, Some("n"))));
        assert!(!meet(&a, &b));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn unknown_old_unique_values_make_a_barrier() {
        let (t, s, d) = with_unique();
        let mut out = Vec::new();
        // PostgreSQL, default replica identity: the key only
        assert!(!row_keys(
            &t,
            &s,
            &d,
            &RowOp::Delete(row(1, None, None)),
            &mut out
        ));
        assert!(!row_keys(
            &t,
            &s,
            &d,
            &RowOp::Update {
                old: None,
                new: cells(row(1, Some("a"), None)),
            },
            &mut out
        ));
        // the whole old row (REPLICA IDENTITY FULL, MySQL): keyed
        let del = keys(&t, &s, &d, &RowOp::Delete(row(1, Some("a"), None)));
        let ins = keys(&t, &s, &d, &RowOp::Insert(row(2, Some("a"), None)));
        assert!(meet(&del, &ins));
        // without unique keys beyond the identity, an identity-only image is enough
        let plain = TableDeps {
            unique: vec![vec!["id".into()]],
            parents: vec![],
        };
        keys(&t, &s, &plain, &RowOp::Delete(row(1, None, None)));
        keys(
            &t,
            &s,
            &plain,
            &RowOp::Update {
                old: None,
                new: cells(row(1, Some("a"), None)),
            },
        );
    }

    #[test]
    fn unchanged_columns_come_from_the_old_image() {
        let (t, s, d) = with_unique();
        // email unchanged (TOAST), the whole old row known: its value is the old one
        let upd = keys(
            &t,
            &s,
            &d,
            &RowOp::Update {
                old: Some(row(1, Some("a"), Some("n"))),
                new: vec![
                    Cell::Value(Value::Int(1)),
                    Cell::Unchanged,
                    Cell::Value(Value::Text("m".into())),
                ],
            },
        );
        let ins = keys(&t, &s, &d, &RowOp::Insert(row(2, Some("a"), None)));
        assert!(meet(&upd, &ins));
    }

    #[test]
    fn uncomputable_unique_indexes_order_the_table() {
        let (t, s, _) = with_unique();
        let d = TableDeps {
            unique: vec![vec![], vec!["no_such_column".into()]],
            parents: vec![],
        };
        let a = keys(&t, &s, &d, &RowOp::Insert(row(1, Some("a"), None)));
        let b = keys(&t, &s, &d, &RowOp::Insert(row(2, Some("b"), None)));
        assert!(meet(&a, &b));
        // another table's rows are not ordered by it
        let other = TableId::new("s", "other");
        let c = keys(&other, &s, &d, &RowOp::Insert(row(1, Some("a"), None)));
        assert!(!meet(&a, &c));
    }

    #[test]
    fn unique_key_columns_are_hashed_by_name_whatever_their_order() {
        let t = TableId::new("s", "t");
        let s = Shape {
            table: t.clone(),
            columns: vec![int("id"), int("a"), int("b")],
            key: vec![0],
        };
        let d1 = TableDeps {
            unique: vec![vec!["a".into(), "b".into()]],
            parents: vec![],
        };
        let d2 = TableDeps {
            unique: vec![vec!["b".into(), "a".into()]],
            parents: vec![],
        };
        let r = |id| RowOp::Insert(vec![Value::Int(id), Value::Int(1), Value::Int(2)]);
        assert!(meet(&keys(&t, &s, &d1, &r(1)), &keys(&t, &s, &d2, &r(2))));
        // a catalog spelling a name in another case
        let d3 = TableDeps {
            unique: vec![vec!["B".into(), "A".into()]],
            parents: vec![],
        };
        assert!(meet(&keys(&t, &s, &d1, &r(1)), &keys(&t, &s, &d3, &r(2))));
    }

    /// A tiny deterministic generator (xorshift): the crate has no property-testing
    /// dependency, and a fixed seed makes a failure reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The same number as one of several variants.
    fn number(rng: &mut Rng, n: i64) -> Value {
        match rng.below(4) {
            0 => Value::Int(n),
            1 => Value::UInt(n as u64),
            2 => Value::Decimal(format!("{n}.00")),
            _ => Value::F64(n as f64),
        }
    }

    /// Property: two changes that touch a common row identity, unique value or
    /// parent row (judged on the plain values) always share a key.
    #[test]
    fn conflicting_changes_always_share_a_key() {
        let (p, ps, c, cs, _) = parent_child();
        let c_deps = TableDeps {
            unique: vec![vec!["id".into()], vec!["u".into()]],
            parents: vec![ParentRef {
                columns: vec!["parent_ref".into()],
                parent: p.clone(),
                parent_columns: vec!["pid".into()],
            }],
        };
        let cs = Shape {
            columns: vec![int("id"), int("parent_ref"), int("u")],
            ..cs
        };
        let p_deps = TableDeps::default();
        // what a change touches, as (table, column kind, value) facts
        #[derive(PartialEq)]
        enum Fact {
            Parent(i64),
            Child(i64),
            Unique(i64),
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // None: a barrier, ordered with everything
        let keyed = |t: &TableId, s: &Shape, d: &TableDeps, op: &RowOp| {
            let mut out = Vec::new();
            row_keys(t, s, d, op, &mut out).then_some(out)
        };
        let mut changes: Vec<(Vec<Fact>, Option<Vec<Key>>)> = Vec::new();
        let mut barriers = 0;
        for _ in 0..400 {
            let (facts, op_keys) = if rng.below(3) == 0 {
                let pid = rng.below(6) as i64;
                let op = if rng.below(2) == 0 {
                    RowOp::Insert(vec![number(&mut rng, pid), Value::Null])
                } else {
                    RowOp::Delete(vec![number(&mut rng, pid), Value::Text("x".into())])
                };
                (vec![Fact::Parent(pid)], keyed(&p, &ps, &p_deps, &op))
            } else {
                let img = |rng: &mut Rng, id: Option<i64>| -> (Vec<Fact>, Vec<Value>) {
                    let id = id.unwrap_or_else(|| rng.below(8) as i64);
                    let parent = rng.below(7) as i64; // 6: NULL
                    let u = rng.below(7) as i64; // 6: NULL
                    let mut facts = vec![Fact::Child(id)];
                    let mut vals = vec![number(rng, id)];
                    if parent < 6 {
                        facts.push(Fact::Parent(parent));
                        vals.push(number(rng, parent));
                    } else {
                        vals.push(Value::Null);
                    }
                    if u < 6 {
                        facts.push(Fact::Unique(u));
                        vals.push(number(rng, u));
                    } else {
                        vals.push(Value::Null);
                    }
                    (facts, vals)
                };
                let (mut facts, a) = img(&mut rng, None);
                let op = match rng.below(3) {
                    0 => RowOp::Insert(a),
                    1 => RowOp::Delete(a),
                    _ => {
                        // half the updates keep the row's key
                        let keep = match (&a[0], rng.below(2)) {
                            (Value::Int(i), 0) => Some(*i),
                            _ => None,
                        };
                        let (f2, b) = img(&mut rng, keep);
                        facts.extend(f2);
                        RowOp::Update {
                            old: Some(a),
                            new: cells(b),
                        }
                    }
                };
                (facts, keyed(&c, &cs, &c_deps, &op))
            };
            barriers += usize::from(op_keys.is_none());
            changes.push((facts, op_keys));
        }
        let meets = |a: &Option<Vec<Key>>, b: &Option<Vec<Key>>| match (a, b) {
            (Some(a), Some(b)) => meet(a, b),
            _ => true,
        };
        let mut conflicts = 0;
        for (i, (fa, ka)) in changes.iter().enumerate() {
            for (fb, kb) in &changes[..i] {
                if fa.iter().any(|f| fb.contains(f)) {
                    conflicts += 1;
                    assert!(meets(ka, kb), "conflicting changes share no key");
                }
            }
        }
        assert!(
            conflicts > 1000,
            "the generator makes conflicts ({conflicts})"
        );
        // a few barriers (old images whose other columns are all NULL), not many
        assert!(barriers < 40, "{barriers} barriers");
        // and keys are not all alike: some pairs are independent
        let independent = changes
            .iter()
            .enumerate()
            .flat_map(|(i, (_, a))| changes[..i].iter().map(move |(_, b)| (a, b)))
            .filter(|(a, b)| !meets(a, b))
            .count();
        assert!(independent > 1000, "{independent}");
    }
}
