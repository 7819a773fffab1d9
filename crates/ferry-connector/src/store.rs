//! What Ferry's checkpoint tables on a SQL target need from the target's engine:
//! where they live, how their name columns compare, and the session locks that
//! tell whether a run still writes a task's data.

/// The engine-specific SQL of the checkpoint store and of the writer locks.
pub trait StoreDialect: Send + Sync {
    /// Creates the `ferry` namespace (a schema, or a database where schemas are
    /// databases) if missing.
    fn create_namespace_sql(&self) -> &'static str;

    /// The column type of a table name: compared exactly (a default collation that
    /// ignores case would make `"A"."T"` and `a.t`, both real, one key).
    fn exact_name_type(&self) -> &'static str;

    /// A query listing `(table, column)` of name columns an earlier version created
    /// without the exact comparison, when the engine can have such.
    fn stale_name_columns_sql(&self) -> Option<&'static str>;

    /// The statement that gives `table.column` of the `ferry` namespace the exact
    /// name type.
    fn fix_name_column_sql(&self, table: &str, column: &str) -> String;

    /// The query a session writing task `key`'s data runs to say so (`slot`: the
    /// stream's `None`, a copy worker's index); it returns `1` when the session
    /// holds its lock, or nothing to check when the engine's lock cannot fail.
    fn join_writers_sql(&self, key: &str, slot: Option<usize>) -> (String, bool);

    /// A query listing the other sessions that hold any of task `key`'s writer locks
    /// (up to `slots` copy workers), one session id per row.
    fn writer_sessions_sql(&self, key: &str, slots: usize) -> String;

    /// The statement that ends session `id` (one [`Self::writer_sessions_sql`] listed).
    fn end_session_sql(&self, id: &str) -> String;
}
