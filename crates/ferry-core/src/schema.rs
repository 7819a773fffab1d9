//! The schema model both engines are read into and written from.
//!
//! Each column keeps its *native* type text (used verbatim when source and target are
//! the same engine, so nothing is lost) and a *logical* type (used to map across
//! engines, with the rules documented in `docs/type-mapping.md`).

use std::fmt;

/// A table's qualified name: schema (PostgreSQL) or database (MySQL), and name.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct TableId {
    /// PostgreSQL schema or MySQL database.
    pub schema: String,
    /// Table name.
    pub name: String,
}

impl TableId {
    /// Builds a table id.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl TableId {
    /// Reads back what [`Display`](fmt::Display) wrote (checkpoint rows store table
    /// names so): a part in double quotes is taken literally, an unquoted schema ends
    /// at the first dot and an unquoted table name runs to the end.
    pub fn parse(s: &str) -> Option<TableId> {
        fn quoted(s: &str) -> Option<(String, &str)> {
            let body = s.strip_prefix('"')?;
            let mut out = String::new();
            let mut it = body.char_indices().peekable();
            while let Some((i, c)) = it.next() {
                if c == '"' {
                    if matches!(it.peek(), Some((_, '"'))) {
                        it.next();
                        out.push('"');
                    } else {
                        return Some((out, &body[i + 1..]));
                    }
                } else {
                    out.push(c);
                }
            }
            None
        }
        let (schema, rest) = if s.starts_with('"') {
            let (schema, rest) = quoted(s)?;
            (schema, rest.strip_prefix('.')?)
        } else {
            let (a, b) = s.split_once('.')?;
            (a.to_string(), b)
        };
        let name = if rest.starts_with('"') {
            match quoted(rest)? {
                (n, "") => n,
                _ => return None,
            }
        } else {
            rest.to_string()
        };
        Some(TableId::new(schema, name))
    }
}

/// Writes a name part, in double quotes when a dot or a leading quote would make
/// `schema.table` ambiguous.
fn part(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if s.contains('.') || s.starts_with('"') {
        write!(f, "\"{}\"", s.replace('"', "\"\""))
    } else {
        f.write_str(s)
    }
}

/// `schema.table`; a part holding a dot is quoted (`"a.b".t`), the form object
/// patterns use too, so the text names one table only.
impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        part(f, &self.schema)?;
        f.write_str(".")?;
        part(f, &self.name)
    }
}

/// Engine-neutral column type, enough to choose the target type and encode values.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LogicalType {
    /// BOOLEAN.
    Bool,
    /// Integer of `bytes` width (1, 2, 3, 4, 8).
    Int {
        /// Storage width in bytes.
        bytes: u8,
        /// MySQL UNSIGNED.
        unsigned: bool,
    },
    /// Exact numeric; `None` precision = unconstrained PostgreSQL NUMERIC.
    Decimal {
        /// Total digits.
        precision: Option<u32>,
        /// Digits after the point.
        scale: Option<u32>,
    },
    /// REAL / FLOAT.
    Float32,
    /// DOUBLE PRECISION.
    Float64,
    /// Fixed-length characters.
    Char(Option<u32>),
    /// Variable-length characters with a limit.
    VarChar(Option<u32>),
    /// Unlimited text.
    Text,
    /// Binary data (any length).
    Bytes,
    /// Calendar date.
    Date,
    /// MySQL TIME (a duration of up to ±838 hours) or PostgreSQL TIME.
    Time(u8),
    /// PostgreSQL TIME WITH TIME ZONE.
    TimeTz(u8),
    /// PostgreSQL INTERVAL.
    Interval,
    /// Timestamp without zone (MySQL DATETIME), with fractional digits.
    Timestamp(u8),
    /// An instant (PostgreSQL TIMESTAMPTZ, MySQL TIMESTAMP), with fractional digits.
    TimestampTz(u8),
    /// MySQL YEAR.
    Year,
    /// Bit string of `len` bits; `varying` for PostgreSQL BIT VARYING.
    Bit {
        /// Number of bits (maximum, when varying).
        len: u32,
        /// PostgreSQL VARBIT.
        varying: bool,
    },
    /// Enumeration with its labels in order.
    Enum(Vec<String>),
    /// MySQL SET with its members.
    Set(Vec<String>),
    /// JSON (MySQL JSON, PostgreSQL json/jsonb).
    Json,
    /// UUID.
    Uuid,
    /// Network address types (inet, cidr, macaddr) carried as text.
    Network,
    /// PostgreSQL array of an element type.
    Array(Box<LogicalType>),
    /// A type Ferry cannot map across engines (its native name); same-engine only.
    Unsupported(String),
}

/// One column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Native type text of the source engine, e.g. `bigint unsigned`, `numeric(10,2)`.
    pub native_type: String,
    /// Mapped meaning.
    pub logical: LogicalType,
    /// NULL allowed.
    pub nullable: bool,
    /// Default expression in the source engine's syntax (`None` = no default).
    pub default: Option<String>,
    /// Generation expression for generated columns (never written to).
    pub generated: Option<String>,
    /// Stored (vs virtual) generated column.
    pub generated_stored: bool,
    /// Identity / serial / AUTO_INCREMENT.
    pub auto_increment: bool,
    /// Column comment.
    pub comment: Option<String>,
    /// MySQL character set of the column, when it has one (for `check`).
    pub charset: Option<String>,
}

impl Column {
    /// A plain nullable column of a type: no default, not generated, no identity —
    /// what catalog readers start from and tests build.
    pub fn new(
        name: impl Into<String>,
        native_type: impl Into<String>,
        logical: LogicalType,
    ) -> Self {
        Column {
            name: name.into(),
            native_type: native_type.into(),
            logical,
            nullable: true,
            default: None,
            generated: None,
            generated_stored: false,
            auto_increment: false,
            comment: None,
            charset: None,
        }
    }

    /// True when the column's value is computed by the database, so it is not copied.
    pub fn is_generated(&self) -> bool {
        self.generated.is_some()
    }
}

/// An index or a unique constraint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// Column names in order (expression indexes carry the expression text).
    pub columns: Vec<String>,
    /// Unique.
    pub unique: bool,
    /// Same-engine definition used verbatim (PostgreSQL: the part from `USING`;
    /// MySQL: the key clause). `None` when it is plain columns.
    pub native_def: Option<String>,
    /// Prefix lengths per column (MySQL), parallel to `columns`.
    pub prefix: Vec<Option<u32>>,
    /// Backs a UNIQUE constraint (PostgreSQL) rather than being a bare index.
    pub is_constraint: bool,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub ref_table: TableId,
    /// Referenced columns.
    pub ref_columns: Vec<String>,
    /// ON DELETE action (`CASCADE`, `SET NULL`, …; `NO ACTION` default).
    pub on_delete: String,
    /// ON UPDATE action.
    pub on_update: String,
}

/// A CHECK constraint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// Constraint name.
    pub name: String,
    /// Boolean expression in the source engine's syntax, without `CHECK`.
    pub expr: String,
}

/// A table with everything needed to recreate it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    /// Qualified name on the source.
    pub id: TableId,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns (empty = no primary key).
    pub primary_key: Vec<String>,
    /// Secondary and unique indexes (not the primary key).
    pub indexes: Vec<Index>,
    /// Foreign keys (created after the data).
    pub foreign_keys: Vec<ForeignKey>,
    /// Check constraints.
    pub checks: Vec<Check>,
    /// Table comment.
    pub comment: Option<String>,
    /// Estimated row count (for planning and progress).
    pub estimated_rows: u64,
    /// Estimated size in bytes.
    pub estimated_bytes: u64,
    /// MySQL storage engine (InnoDB, MyISAM, …), when known.
    pub storage_engine: Option<String>,
    /// Next AUTO_INCREMENT / sequence value on the source, when known.
    pub next_auto_increment: Option<u64>,
    /// Sequences owned by this table's columns (PostgreSQL serial / identity).
    pub sequences: Vec<Sequence>,
    /// User-defined and extension types the columns use (PostgreSQL source).
    pub pg_types: PgTypes,
}

/// What a PostgreSQL target needs before it can hold a PostgreSQL table whose columns
/// use types of their own: extensions, enums, domains, composite and range types.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PgTypes {
    /// `CREATE EXTENSION` / `CREATE TYPE` / `CREATE DOMAIN` statements, each type after
    /// the types it is made of; each is a no-op when the object exists already.
    pub create: Vec<String>,
    /// Extensions the target must have available: (extension, column, type).
    pub extensions: Vec<(String, String, String)>,
    /// Types Ferry cannot recreate: (column, type, why).
    pub unsupported: Vec<(String, String, String)>,
    /// Values must be copied as COPY text: a binary form embeds the source's type OIDs
    /// (arrays, composites) or does not exist (e.g. `isn`'s `isbn`).
    pub text_copy: bool,
}

/// A sequence owned by a column (PostgreSQL `serial`, identity).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sequence {
    /// Sequence name (unqualified; it lives in the table's schema).
    pub name: String,
    /// Owning column.
    pub column: String,
    /// Options clause for `CREATE SEQUENCE` (`AS bigint INCREMENT BY 1 …`).
    pub options: String,
    /// `ALWAYS` / `BY DEFAULT` for identity columns; `None` for a serial default.
    pub identity: Option<String>,
    /// The next value the source would hand out.
    pub next_value: i64,
}

impl Table {
    /// The columns that are copied (generated columns are recomputed by the target).
    pub fn copied_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.is_generated())
    }

    /// Finds a column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column chunks are split on: the primary key's first column, when it is an
    /// integer. Ranges over it partition the rows even when the key has more columns.
    pub fn integer_key(&self) -> Option<&Column> {
        let c = self.column(self.primary_key.first()?)?;
        matches!(c.logical, LogicalType::Int { .. }).then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::TableId;

    #[test]
    fn table_ids_print_and_parse_unambiguously() {
        for (schema, name, text) in [
            ("shop", "orders", "shop.orders"),
            ("a.b", "c", "\"a.b\".c"),
            ("a", "b.c", "a.\"b.c\""),
            ("\"q", "t", "\"\"\"q\".t"),
            ("My Schema", "Order", "My Schema.Order"),
        ] {
            let id = TableId::new(schema, name);
            assert_eq!(id.to_string(), text);
            assert_eq!(TableId::parse(text), Some(id));
        }
        // rows written before names were quoted: the first dot splits
        assert_eq!(TableId::parse("s.x.y"), Some(TableId::new("s", "x.y")));
        assert_eq!(TableId::parse("noschema"), None);
    }
}

/// Statements that recreate one table on a target, in the order a copy runs them.
#[derive(Debug, Default, Clone)]
pub struct DdlPlan {
    /// Before the data: schema, types, sequences, the table, comments.
    pub create: Vec<String>,
    /// After the table's data: keys, indexes, checks.
    pub post: Vec<String>,
    /// Sequence / AUTO_INCREMENT positions past the copied rows and the source's
    /// counter: run after the data, and again when an incremental task ends, since
    /// replicated inserts carry explicit keys and never move the target's counter.
    pub counters: Vec<String>,
    /// Statements that may fail on a cross-engine copy without failing the task
    /// (translated CHECK constraints); a failure becomes a reported warning.
    pub optional: Vec<String>,
    /// After every table's data: foreign keys.
    pub foreign_keys: Vec<String>,
    /// What could not be carried over and why (shown to the user).
    pub warnings: Vec<String>,
}
