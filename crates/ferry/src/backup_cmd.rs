//! `ferry backup …` and `ferry restore …`: one command line for both ways of
//! running them. With `--storage` a command works on that repository directly,
//! here and now, without a service (for scripts and cron, like `ferry run`);
//! without it, it asks the service (`--server`), where the cluster's backup policy
//! names the storage and the work runs as a service task.

use crate::client::ClientOpts;
use anyhow::Result;
use clap::{Args, Subcommand};

/// The repository to work on directly (no service).
#[derive(Args, Debug, Clone, Default)]
pub struct Direct {
    /// Work on this repository here, without a service: `file:///dir`, a path, or
    /// `s3://bucket/prefix?endpoint=…&region=…` (credentials from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY). The repository key comes from FERRY_REPO_KEY.
    #[arg(long)]
    pub storage: Option<String>,
}

/// Which sets or tasks a list shows, by time.
#[derive(Args, Debug, Clone, Default)]
pub struct Window {
    /// Only the last period: `24h`, `7d`, `30d` (any number of `h` or `d`).
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Only from this instant (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// Only up to this instant (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
}

/// `ferry backup …`.
#[derive(Subcommand, Debug)]
pub enum BackupCmd {
    /// A cluster's backup policy on the service: schedules, retention, storage.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// Takes a data backup of a cluster now (instant backup). With --storage and
    /// --source it runs here and exits when the set is complete.
    Now {
        /// The cluster (backup policy) name.
        cluster: String,
        /// An incremental set (the changes since the cluster's newest set) instead
        /// of a full one.
        #[arg(long)]
        incremental: bool,
        /// `logical` (rows: restorable into either engine, default) or `physical`
        /// (PostgreSQL: base backup over the replication protocol; MariaDB/MySQL:
        /// `mariadb-backup`) — direct mode.
        #[arg(long, default_value = "logical")]
        method: String,
        /// The database to back up (direct mode; the service takes the policy's).
        #[arg(long)]
        source: Option<String>,
        /// Tables to include (patterns as in a task file's objects.include; direct
        /// mode).
        #[arg(long = "include")]
        include: Vec<String>,
        /// Tables to exclude (direct mode).
        #[arg(long = "exclude")]
        exclude: Vec<String>,
        /// Parallel readers (direct mode; default the machine's cores).
        #[arg(long)]
        jobs: Option<u16>,
        /// Rows per chunk of a table split by key range (direct mode; default
        /// 200000): a chunk is the unit an interrupted backup resumes by.
        #[arg(long)]
        chunk_rows: Option<u64>,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        direct: Direct,
    },
    /// Lists backup sets (or the service's backup, cleanup and secondary tasks).
    List {
        /// Only this cluster's.
        cluster: Option<String>,
        /// `data` (sets and data backup tasks), `log` (log backup tasks / the
        /// archive), `window` (restorable windows), `mark`, `cleanup`, `secondary`,
        /// `secondary-log`, `restore`, `drill`.
        #[arg(long, default_value = "data")]
        kind: String,
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        direct: Direct,
    },
    /// A set's manifest: tables, rows, bytes, position, files.
    Show {
        /// The set id.
        set: String,
        /// Every file, not just the tables.
        #[arg(long)]
        files: bool,
        #[command(flatten)]
        direct: Direct,
    },
    /// Log backup: the cluster's change stream archived continuously (for
    /// point-in-time restore).
    Log {
        #[command(subcommand)]
        cmd: LogCmd,
    },
    /// Makes a named restore point of a cluster (`restore create --until mark:NAME`):
    /// the source's log position now.
    Mark {
        /// The cluster.
        cluster: String,
        /// The mark's name: letters, digits, '.', '-', '_'.
        name: String,
        /// The cluster's database (direct mode; the service takes the policy's).
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        direct: Direct,
    },
    /// Re-reads every file of a set and checks checksums, decoding and row counts.
    /// Exit 0 when intact, 1 when a file is missing or damaged.
    Verify {
        /// The set id.
        set: String,
        #[command(flatten)]
        direct: Direct,
    },
}

/// `ferry backup log …`.
#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// Archives the cluster's change stream here, in the foreground, until
    /// interrupted (direct mode: --storage and --source; the service runs it as the
    /// cluster's log backup task instead). Run it again to continue the archive.
    Run {
        /// The cluster.
        cluster: String,
        /// The database whose log is archived.
        #[arg(long)]
        source: String,
        /// `logical` (row changes: restorable into either engine) or `physical`
        /// (PostgreSQL WAL, for a physical restore).
        #[arg(long, default_value = "logical")]
        method: String,
        /// Close a piece (at a transaction end) once it is this many seconds old.
        #[arg(long, default_value_t = 10)]
        piece_seconds: u64,
        /// …or holds this many MiB of encoded changes.
        #[arg(long, default_value_t = 16)]
        piece_mb: u64,
        /// Tables to include.
        #[arg(long = "include")]
        include: Vec<String>,
        /// Tables to exclude.
        #[arg(long = "exclude")]
        exclude: Vec<String>,
        /// No progress lines.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        direct: Direct,
    },
    /// Fetches one WAL file from the cluster's physical WAL archive (what a
    /// physically restored data directory's `restore_command` runs): exit 0 with
    /// the file written to PATH, 1 when the archive does not have it, 126 when it
    /// is missing or damaged.
    #[command(hide = true)]
    WalFetch {
        /// The cluster.
        cluster: String,
        /// The WAL file name PostgreSQL asks for (`%f`).
        file: String,
        /// Where to write it (`%p`).
        path: String,
        #[command(flatten)]
        direct: Direct,
    },
    /// Starts the cluster's log backup task on the service (a stopped or failed one).
    Start {
        /// The cluster.
        cluster: String,
    },
    /// Stops the cluster's log backup task on the service.
    Stop {
        /// The cluster.
        cluster: String,
    },
}

/// `ferry backup policy …` (service only).
#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Creates or replaces a cluster's policy.
    Set(Box<PolicyArgs>),
    /// Shows one policy, or all.
    Show {
        /// The cluster.
        cluster: Option<String>,
    },
    /// Deletes a policy (its sets stay in storage).
    Delete {
        /// The cluster.
        cluster: String,
    },
}

/// A backup policy as the command line gives it.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// The cluster (policy) name: `[a-z0-9_-]+`.
    pub cluster: String,
    /// The database to back up.
    #[arg(long)]
    pub source: String,
    /// Where sets go: `s3://bucket/prefix?endpoint=…&region=…` or `file:///dir`.
    #[arg(long)]
    pub storage: String,
    /// Cron schedule of full backups (5 fields, UTC), e.g. "0 2 * * 0".
    #[arg(long)]
    pub full: Option<String>,
    /// Cron schedule of incremental backups, e.g. "0 2 * * 1-6".
    #[arg(long)]
    pub incremental: Option<String>,
    /// Retention: `30d` (days) or `7` (sets).
    #[arg(long, default_value = "30d")]
    pub retain: String,
    /// A second storage every completed set is copied to.
    #[arg(long)]
    pub secondary: Option<String>,
    /// Cron schedule of restore drills (the newest set restored into --drill-target
    /// and compared).
    #[arg(long, requires = "drill_target")]
    pub drill: Option<String>,
    /// Scratch database restore drills write to (emptied each time).
    #[arg(long)]
    pub drill_target: Option<String>,
    /// Log backup: `on` archives the cluster's change stream continuously (a log
    /// backup task), `off` (default) does not.
    #[arg(long, default_value = "off")]
    pub log: String,
    /// The log backup's method: `logical` or `physical` (PostgreSQL WAL).
    #[arg(long, default_value = "logical")]
    pub log_method: String,
    /// Tables to include.
    #[arg(long = "include")]
    pub include: Vec<String>,
    /// Tables to exclude.
    #[arg(long = "exclude")]
    pub exclude: Vec<String>,
    /// Admin only: the tenant owning the policy.
    #[arg(long)]
    pub tenant: Option<String>,
}

/// `ferry restore …`.
#[derive(Subcommand, Debug)]
pub enum RestoreCmd {
    /// Restores a set (with its incremental chain) or a dump file into a database.
    Create {
        /// The set to restore (an incremental one brings its chain); with --until,
        /// the cluster whose archive is restored to that point.
        #[arg(
            long,
            required_unless_present = "from_dump",
            conflicts_with = "from_dump"
        )]
        from: Option<String>,
        /// Restore the cluster named by --from to this point: a time
        /// (2026-12-01T10:15:00Z), a position (lsn:0/3A00F10, binlog:FILE:POS), a
        /// GTID (gtid:0-1-4711) or a mark (mark:NAME).
        #[arg(long, requires = "from")]
        until: Option<String>,
        /// A physical restore: write a PostgreSQL data directory here (empty or
        /// absent) that recovers to --until when a server is started on it, instead
        /// of restoring rows into --target.
        #[arg(long, conflicts_with = "target")]
        data_dir: Option<String>,
        /// A dump file in storage (mysqldump / mariadb-dump SQL, pg_dump plain SQL
        /// or custom format): `s3://…/shop.sql`, `file:///…/shop.dump`.
        #[arg(long)]
        from_dump: Option<String>,
        /// The database to restore into.
        #[arg(long, required_unless_present = "data_dir")]
        target: Option<String>,
        /// Only these tables (patterns as in objects.include).
        #[arg(long = "include")]
        include: Vec<String>,
        /// Not these tables.
        #[arg(long = "exclude")]
        exclude: Vec<String>,
        /// What to do with tables that already exist on the target: fail (default),
        /// drop, truncate, append.
        #[arg(long, default_value = "fail")]
        existing_data: String,
        /// A name for the restore (its checkpoints on the target; default from the
        /// set id). Run the same command again to resume an interrupted restore.
        #[arg(long)]
        name: Option<String>,
        /// Parallel writers (default the machine's cores).
        #[arg(long)]
        jobs: Option<u16>,
        /// No progress display.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        direct: Direct,
    },
    /// Lists restore tasks on the service.
    List {
        #[command(flatten)]
        window: Window,
        /// Page size.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One restore task on the service: state, reason, per-table progress.
    Show {
        /// The restore task id.
        id: String,
    },
}

/// Runs `ferry backup …`.
pub async fn backup(client: &ClientOpts, cmd: BackupCmd) -> Result<std::process::ExitCode> {
    if let BackupCmd::Log {
        cmd:
            LogCmd::WalFetch {
                cluster,
                file,
                path,
                direct,
            },
    } = &cmd
    {
        let Some(storage) = &direct.storage else {
            anyhow::bail!("wal-fetch needs --storage");
        };
        return crate::physical_local::wal_fetch(storage, cluster, file, path).await;
    }
    let direct = match &cmd {
        BackupCmd::Policy { .. }
        | BackupCmd::Log {
            cmd: LogCmd::Start { .. } | LogCmd::Stop { .. },
        } => None,
        BackupCmd::Log {
            cmd: LogCmd::Run { direct, .. } | LogCmd::WalFetch { direct, .. },
        }
        | BackupCmd::Mark { direct, .. }
        | BackupCmd::Now { direct, .. }
        | BackupCmd::List { direct, .. }
        | BackupCmd::Show { direct, .. }
        | BackupCmd::Verify { direct, .. } => direct.storage.clone(),
    };
    match direct {
        Some(storage) => crate::backup_local::run(&storage, client, cmd).await,
        None => crate::client_backup::backup(client, cmd).await,
    }
}

/// Runs `ferry restore …`.
pub async fn restore(client: &ClientOpts, cmd: RestoreCmd) -> Result<std::process::ExitCode> {
    match &cmd {
        RestoreCmd::Create {
            data_dir: Some(_), ..
        } => crate::physical_local::restore(client, cmd).await,
        RestoreCmd::Create {
            direct, from_dump, ..
        } if direct.storage.is_some() || from_dump.is_some() => {
            crate::restore_local::run(client, cmd).await
        }
        _ => crate::client_backup::restore(client, cmd).await,
    }
}
