//! PostgreSQL's change log: a logical replication slot and its publication.
