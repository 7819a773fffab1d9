//! MySQL/MariaDB's change log: the binary log.
