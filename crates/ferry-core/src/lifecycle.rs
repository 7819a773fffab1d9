//! Task lifecycles (SPEC.md §2.1–2.3) as one pure transition table: the service,
//! its workers and the console only *ask* it which state a cause leads to and which
//! actions a user may take. No I/O here, so every path is unit-tested.

use crate::spec::Kind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Every state a migration, sync or DR task can be in. Ids are SPEC.md's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Allocating a worker and validating the endpoints.
    Creating,
    /// Validation failed (reason recorded).
    CreateFailed,
    /// Created, not started; still editable.
    Configuring,
    /// The tenant's balance is ≤ 0: work suspended, positions kept.
    Frozen,
    /// A scheduled start is waiting for its time.
    WaitingToStart,
    /// Connecting, prechecks, setting up the slot/stream.
    Starting,
    /// Starting failed.
    StartFailed,
    /// Full copy running (migration, sync).
    Full,
    /// Full copy failed.
    FullFailed,
    /// Change stream running (migration, sync).
    Incremental,
    /// Change stream failed definitively.
    IncrementalFailed,
    /// A transient fault or a lost worker: retrying by itself.
    Recovering,
    /// Paused by the user.
    Paused,
    /// Releasing slot, publication and worker.
    Ending,
    /// Releasing failed.
    EndFailed,
    /// Released.
    Ended,
    /// Sync: an edit of the objects is being applied.
    Changing,
    /// Sync: applying the edit failed.
    ChangeFailed,
    /// DR: full initialisation of the standby.
    Initializing,
    /// DR: initialisation finished, replication about to run.
    Initialized,
    /// DR: replicating.
    Replicating,
    /// DR: replication hit an error.
    Abnormal,
}

/// All states, for listing and exhaustive tests.
pub const STATES: [State; 22] = [
    State::Creating,
    State::CreateFailed,
    State::Configuring,
    State::Frozen,
    State::WaitingToStart,
    State::Starting,
    State::StartFailed,
    State::Full,
    State::FullFailed,
    State::Incremental,
    State::IncrementalFailed,
    State::Recovering,
    State::Paused,
    State::Ending,
    State::EndFailed,
    State::Ended,
    State::Changing,
    State::ChangeFailed,
    State::Initializing,
    State::Initialized,
    State::Replicating,
    State::Abnormal,
];

impl State {
    /// The snake_case id (as in the API and SPEC.md).
    pub fn id(self) -> &'static str {
        match self {
            State::Creating => "creating",
            State::CreateFailed => "create_failed",
            State::Configuring => "configuring",
            State::Frozen => "frozen",
            State::WaitingToStart => "waiting_to_start",
            State::Starting => "starting",
            State::StartFailed => "start_failed",
            State::Full => "full",
            State::FullFailed => "full_failed",
            State::Incremental => "incremental",
            State::IncrementalFailed => "incremental_failed",
            State::Recovering => "recovering",
            State::Paused => "paused",
            State::Ending => "ending",
            State::EndFailed => "end_failed",
            State::Ended => "ended",
            State::Changing => "changing",
            State::ChangeFailed => "change_failed",
            State::Initializing => "initializing",
            State::Initialized => "initialized",
            State::Replicating => "replicating",
            State::Abnormal => "abnormal",
        }
    }

    /// Parses an id.
    pub fn from_id(id: &str) -> Option<State> {
        STATES.into_iter().find(|s| s.id() == id)
    }

    /// The console's label (the seeds' Chinese names).
    pub fn label_zh(self) -> &'static str {
        match self {
            State::Creating => "创建中",
            State::CreateFailed => "创建任务失败",
            State::Configuring => "配置",
            State::Frozen => "冻结",
            State::WaitingToStart => "等待启动",
            State::Starting => "启动中",
            State::StartFailed => "启动失败",
            State::Full => "全量迁移",
            State::FullFailed => "全量迁移失败",
            State::Incremental => "增量迁移",
            State::IncrementalFailed => "增量迁移失败",
            State::Recovering => "故障恢复",
            State::Paused => "暂停中",
            State::Ending => "结束任务中",
            State::EndFailed => "结束任务失败",
            State::Ended => "已结束",
            State::Changing => "任务变更中",
            State::ChangeFailed => "任务变更失败",
            State::Initializing => "初始化",
            State::Initialized => "初始化完成",
            State::Replicating => "灾备中",
            State::Abnormal => "灾备异常",
        }
    }

    /// A worker must be running the task's engine in this state.
    pub fn runs(self) -> bool {
        matches!(
            self,
            State::Starting
                | State::Full
                | State::Incremental
                | State::Recovering
                | State::Changing
                | State::Initializing
                | State::Initialized
                | State::Replicating
        )
    }

    /// A failure state (notifications fire on entering one).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            State::CreateFailed
                | State::StartFailed
                | State::FullFailed
                | State::IncrementalFailed
                | State::EndFailed
                | State::ChangeFailed
                | State::Abnormal
        )
    }

    /// The states a task of `kind` can be in.
    pub fn of_kind(kind: Kind) -> Vec<State> {
        STATES
            .into_iter()
            .filter(|s| match s {
                State::Changing | State::ChangeFailed => kind == Kind::Sync,
                State::Initializing | State::Initialized | State::Replicating | State::Abnormal => {
                    kind == Kind::Dr
                }
                State::Full | State::FullFailed | State::Incremental | State::IncrementalFailed => {
                    kind != Kind::Dr
                }
                _ => true,
            })
            .collect()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Start now (also: retry a failed start or phase, start a scheduled task early).
    Start,
    /// Start at a given time.
    Schedule,
    /// Suspend the work, keeping positions.
    Pause,
    /// Continue a paused task.
    Resume,
    /// Release slot, publication and worker.
    End,
    /// Remove the task record (only when nothing is held on its behalf).
    Delete,
    /// Sync: change the replicated objects.
    Edit,
    /// DR: planned swap of primary and standby.
    Switchover,
    /// DR: promote the standby now.
    Failover,
}

/// Every action, for listing the allowed ones.
pub const ACTIONS: [Action; 9] = [
    Action::Start,
    Action::Schedule,
    Action::Pause,
    Action::Resume,
    Action::End,
    Action::Delete,
    Action::Edit,
    Action::Switchover,
    Action::Failover,
];

impl Action {
    /// The snake_case id used in the API path.
    pub fn id(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Schedule => "schedule",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::End => "end",
            Action::Delete => "delete",
            Action::Edit => "edit",
            Action::Switchover => "switchover",
            Action::Failover => "failover",
        }
    }

    /// Parses an id.
    pub fn from_id(id: &str) -> Option<Action> {
        ACTIONS.into_iter().find(|a| a.id() == id)
    }
}

/// What the system observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A user action.
    User(Action),
    /// Endpoints validated, worker allocated.
    Validated,
    /// Validation failed.
    ValidationFailed,
    /// The scheduled start time passed.
    StartTimeReached,
    /// The engine began the full copy.
    FullStarted,
    /// The full copy finished (DR: initialisation done).
    FullDone,
    /// The engine streams changes.
    IncrementalStarted,
    /// A `mode: full` task finished its only phase.
    Completed,
    /// A definite error.
    Failed,
    /// A transient error, or the worker running the task was lost.
    Fault,
    /// Slot, publication and worker released.
    Released,
    /// Releasing failed.
    ReleaseFailed,
    /// Balance ≤ 0.
    Freeze,
    /// Balance back above 0: return to `previous`.
    Unfreeze(State),
    /// A sync edit was applied.
    EditApplied,
    /// The engine (re)started in the middle of a sync edit: it copies the added
    /// tables again.
    EditResumed,
    /// A sync edit failed.
    EditFailed,
}

/// A refused transition: the current state and what is allowed instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The task's state.
    pub state: State,
    /// What was attempted.
    pub cause: Cause,
    /// The user actions allowed in `state`.
    pub allowed: Vec<Action>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.cause {
            Cause::User(a) => format!("action {}", a.id()),
            c => format!("{c:?}"),
        };
        let allowed: Vec<&str> = self.allowed.iter().map(|a| a.id()).collect();
        write!(
            f,
            "{what} is not allowed while the task is {}; allowed: {}",
            self.state,
            if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            }
        )
    }
}

/// The state `cause` leads to from `from`, for a task of `kind`.
pub fn next(kind: Kind, from: State, cause: Cause) -> Result<State, Refused> {
    table(kind, from, cause).ok_or_else(|| Refused {
        state: from,
        cause,
        allowed: allowed_actions(kind, from),
    })
}

/// The user actions `next` accepts in `state`.
pub fn allowed_actions(kind: Kind, state: State) -> Vec<Action> {
    ACTIONS
        .into_iter()
        .filter(|a| table(kind, state, Cause::User(*a)).is_some())
        .collect()
}

/// The transition table; `None` = not allowed.
fn table(kind: Kind, from: State, cause: Cause) -> Option<State> {
    use Action as A;
    use Cause as C;
    use State as S;
    let dr = kind == Kind::Dr;
    let (full, incremental) = if dr {
        (S::Initializing, S::Replicating)
    } else {
        (S::Full, S::Incremental)
    };
    let to = match (from, cause) {
        (S::Creating, C::Validated) => Some(S::Configuring),
        (S::Creating, C::ValidationFailed) => Some(S::CreateFailed),
        (S::Configuring, C::User(A::Schedule)) => Some(S::WaitingToStart),
        (S::WaitingToStart, C::StartTimeReached) => Some(S::Starting),
        (
            S::Configuring
            | S::WaitingToStart
            | S::StartFailed
            | S::FullFailed
            | S::IncrementalFailed
            | S::ChangeFailed
            | S::Abnormal,
            C::User(A::Start),
        ) => Some(S::Starting),
        (S::Paused, C::User(A::Resume)) => Some(S::Starting),
        (S::Starting | S::Recovering, C::FullStarted) => Some(full),
        (S::Initializing, C::FullDone) if dr => Some(S::Initialized),
        (S::Full, C::FullDone) => Some(S::Full),
        (S::Starting | S::Recovering | S::Full | S::Initialized, C::IncrementalStarted) => {
            Some(incremental)
        }
        (S::Initializing, C::IncrementalStarted) if dr => Some(S::Replicating),
        (S::Incremental | S::Replicating, C::IncrementalStarted) => Some(from),
        (S::Full, C::Completed) if !dr => Some(S::Ended),
        (S::Starting, C::Failed) => Some(S::StartFailed),
        (S::Full, C::Failed) => Some(S::FullFailed),
        (S::Incremental | S::Recovering, C::Failed) if !dr => Some(S::IncrementalFailed),
        (S::Initializing | S::Initialized | S::Replicating | S::Recovering, C::Failed) if dr => {
            Some(S::Abnormal)
        }
        (S::Changing, C::Failed | C::EditFailed) => Some(S::ChangeFailed),
        (s, C::Fault) if s.runs() => Some(S::Recovering),
        (
            S::Starting
            | S::Full
            | S::Incremental
            | S::Recovering
            | S::Changing
            | S::Initializing
            | S::Initialized
            | S::Replicating,
            C::User(A::Pause),
        ) => Some(S::Paused),
        (S::Incremental | S::ChangeFailed, C::User(A::Edit)) if kind == Kind::Sync => {
            Some(S::Changing)
        }
        (S::Changing, C::EditApplied) => Some(S::Incremental),
        (S::Starting | S::Recovering, C::EditResumed) if kind == Kind::Sync => Some(S::Changing),
        (S::Replicating, C::User(A::Switchover)) if dr => Some(S::Replicating),
        (
            S::Replicating | S::Abnormal | S::Recovering | S::Initializing | S::Initialized,
            C::User(A::Failover),
        ) if dr => Some(S::Ending),
        (
            S::CreateFailed
            | S::Configuring
            | S::WaitingToStart
            | S::StartFailed
            | S::Full
            | S::FullFailed
            | S::Incremental
            | S::IncrementalFailed
            | S::Recovering
            | S::Paused
            | S::EndFailed
            | S::ChangeFailed
            | S::Changing
            | S::Initializing
            | S::Initialized
            | S::Replicating
            | S::Abnormal
            | S::Starting,
            C::User(A::End),
        ) => Some(S::Ending),
        (S::Ending, C::Released) => Some(S::Ended),
        (S::Ending, C::ReleaseFailed) => Some(S::EndFailed),
        (S::CreateFailed | S::Configuring | S::Ended, C::User(A::Delete)) => Some(from),
        (s, C::Freeze) if !matches!(s, S::Creating | S::Frozen | S::Ending | S::Ended) => {
            Some(S::Frozen)
        }
        (S::Frozen, C::Unfreeze(prev)) => Some(if prev.runs() { S::Recovering } else { prev }),
        (S::Frozen, C::User(A::End)) => Some(S::Ending),
        _ => None,
    };
    to.filter(|s| State::of_kind(kind).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashSet, VecDeque};

    fn causes() -> Vec<Cause> {
        let mut c: Vec<Cause> = ACTIONS.into_iter().map(Cause::User).collect();
        c.extend([
            Cause::Validated,
            Cause::ValidationFailed,
            Cause::StartTimeReached,
            Cause::FullStarted,
            Cause::FullDone,
            Cause::IncrementalStarted,
            Cause::Completed,
            Cause::Failed,
            Cause::Fault,
            Cause::Released,
            Cause::ReleaseFailed,
            Cause::Freeze,
            Cause::EditApplied,
            Cause::EditResumed,
            Cause::EditFailed,
        ]);
        c.extend(STATES.into_iter().map(Cause::Unfreeze));
        c
    }

    /// Every state of each kind is reachable from `creating` by real causes.
    #[test]
    fn every_state_of_every_kind_is_reachable() {
        for kind in [Kind::Migration, Kind::Sync, Kind::Dr] {
            let mut seen = HashSet::from([State::Creating]);
            let mut queue = VecDeque::from([State::Creating]);
            while let Some(s) = queue.pop_front() {
                for c in causes() {
                    if let Ok(t) = next(kind, s, c) {
                        if seen.insert(t) {
                            queue.push_back(t);
                        }
                    }
                }
            }
            let want: HashSet<State> = State::of_kind(kind).into_iter().collect();
            assert_eq!(seen, want, "{kind:?}");
        }
    }

    /// No transition leaves the kind's states; refusals name the allowed actions.
    #[test]
    fn transitions_stay_within_the_kind_and_refusals_explain() {
        for kind in [Kind::Migration, Kind::Sync, Kind::Dr] {
            for s in State::of_kind(kind) {
                for c in causes() {
                    match next(kind, s, c) {
                        Ok(t) => assert!(
                            State::of_kind(kind).contains(&t),
                            "{kind:?} {s} {c:?} → {t}"
                        ),
                        Err(r) => {
                            assert_eq!(r.state, s);
                            assert_eq!(r.allowed, allowed_actions(kind, s));
                            assert!(r.to_string().contains(s.id()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_usual_paths() {
        let m = Kind::Migration;
        let mut s = State::Creating;
        for c in [
            Cause::Validated,
            Cause::User(Action::Start),
            Cause::FullStarted,
            Cause::IncrementalStarted,
            Cause::Fault,
            Cause::IncrementalStarted,
            Cause::User(Action::Pause),
            Cause::User(Action::Resume),
            Cause::IncrementalStarted,
            Cause::User(Action::End),
            Cause::Released,
        ] {
            s = next(m, s, c).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(s, State::Ended);
        // running tasks cannot be deleted; ended ones can
        let r = next(m, State::Incremental, Cause::User(Action::Delete)).unwrap_err();
        assert!(r.allowed.contains(&Action::End) && !r.allowed.contains(&Action::Delete));
        assert!(next(m, State::Ended, Cause::User(Action::Delete)).is_ok());
        // an edit copying added tables can be paused and resumed (or survive a
        // fault): the engine says it copies again and the task is `changing` again
        let y = Kind::Sync;
        let mut s = State::Incremental;
        for (c, want) in [
            (Cause::User(Action::Edit), State::Changing),
            (Cause::User(Action::Pause), State::Paused),
            (Cause::User(Action::Resume), State::Starting),
            (Cause::EditResumed, State::Changing),
            (Cause::Fault, State::Recovering),
            (Cause::EditResumed, State::Changing),
            (Cause::EditApplied, State::Incremental),
        ] {
            s = next(y, s, c).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s, want);
        }
        assert!(next(Kind::Migration, State::Starting, Cause::EditResumed).is_err());
        // freezing keeps where the task was; a running one recovers after the top-up
        assert_eq!(
            next(m, State::Frozen, Cause::Unfreeze(State::Incremental)),
            Ok(State::Recovering)
        );
        assert_eq!(
            next(m, State::Frozen, Cause::Unfreeze(State::Paused)),
            Ok(State::Paused)
        );
        // DR names its phases differently; sync alone has edits
        assert_eq!(
            next(Kind::Dr, State::Starting, Cause::FullStarted),
            Ok(State::Initializing)
        );
        assert_eq!(
            next(Kind::Dr, State::Initializing, Cause::FullDone),
            Ok(State::Initialized)
        );
        assert_eq!(
            next(Kind::Dr, State::Initialized, Cause::IncrementalStarted),
            Ok(State::Replicating)
        );
        assert!(next(m, State::Incremental, Cause::User(Action::Edit)).is_err());
        assert_eq!(
            next(Kind::Sync, State::Incremental, Cause::User(Action::Edit)),
            Ok(State::Changing)
        );
        assert_eq!(
            next(Kind::Sync, State::Changing, Cause::EditApplied),
            Ok(State::Incremental)
        );
    }

    #[test]
    fn ids_round_trip() {
        for s in STATES {
            assert_eq!(State::from_id(s.id()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.id())
            );
        }
        for a in ACTIONS {
            assert_eq!(Action::from_id(a.id()), Some(a));
        }
    }
}
