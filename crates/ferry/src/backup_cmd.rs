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
        /// `data` (sets and data backup tasks), `cleanup`, `secondary`, `restore`,
        /// `drill`.
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
    /// Re-reads every file of a set and checks checksums, decoding and row counts.
    /// Exit 0 when intact, 1 when a file is missing or damaged.
    Verify {
        /// The set id.
        set: String,
        #[command(flatten)]
        direct: Direct,
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
    /// Tables to include.
    #[arg(long = "include")]
    pub include: Vec<String>,
    /// Tables to exclude.
    #[arg(long = "exclude")]
    pub exclude: Vec<String>,
}

/// `ferry restore …`.
#[derive(Subcommand, Debug)]
pub enum RestoreCmd {
    /// Restores a set (with its incremental chain) or a dump file into a database.
    Create {
        /// The set to restore (an incremental one brings its chain).
        #[arg(
            long,
            required_unless_present = "from_dump",
            conflicts_with = "from_dump"
        )]
        from: Option<String>,
        /// A dump file in storage (mysqldump / mariadb-dump SQL, pg_dump plain SQL
        /// or custom format): `s3://…/shop.sql`, `file:///…/shop.dump`.
        #[arg(long)]
        from_dump: Option<String>,
        /// The database to restore into.
        #[arg(long)]
        target: String,
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
    },
    /// One restore task on the service: state, reason, per-table progress.
    Show {
        /// The restore task id.
        id: String,
    },
}

/// Runs `ferry backup …`.
pub async fn backup(client: &ClientOpts, cmd: BackupCmd) -> Result<std::process::ExitCode> {
    let direct = match &cmd {
        BackupCmd::Policy { .. } => None,
        BackupCmd::Now { direct, .. }
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
            direct, from_dump, ..
        } if direct.storage.is_some() || from_dump.is_some() => {
            crate::restore_local::run(client, cmd).await
        }
        _ => crate::client_backup::restore(client, cmd).await,
    }
}
