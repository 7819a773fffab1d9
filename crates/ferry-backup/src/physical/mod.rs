//! Physical backups: a PostgreSQL base backup over the replication protocol plus
//! WAL archived from a physical slot; MySQL/MariaDB through `mariadb-backup`.
