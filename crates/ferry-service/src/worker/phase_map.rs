//! From where the engine is to what the task's lifecycle records: a pure mapping
//! from (the task's state, the engine's [`Phase`], whether a sync edit runs, …) to
//! the causes the worker applies. Nothing here does I/O, so every rule is
//! unit-tested below; the worker only carries the answer out.

use ferry_core::lifecycle::{self, Cause, State};
use ferry_core::spec::Kind;
use ferry_engine::phase::Phase;

/// Why a task entered `full`.
pub(super) const COPYING: &str = "copying the tables";
/// Why a task entered `incremental` (or its kind's streaming state).
pub(super) const STREAMING: &str = "streaming changes from the source log";
/// Why a task (re)entered `changing`: the engine copies a pending edit's tables.
pub(super) const EDIT_RESUMED: &str = "copying the added tables while the others stream";
/// Why a sync edit became the task's objects.
const EDIT_APPLIED: &str = "edit applied: the added tables are copied and stream with the others";
/// Why a DR task left `initializing`.
const INITIALISED: &str = "initialisation finished";

/// One cause to apply, with the reason the task's history shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Step {
    /// What happened.
    pub cause: Cause,
    /// Why, for the history.
    pub why: String,
    /// Whether a failure to apply it is reported (otherwise it is left for the
    /// next pass: the engine's phase is seen again then).
    pub required: bool,
}

impl Step {
    fn required(cause: Cause, why: &str) -> Step {
        Step {
            cause,
            why: why.into(),
            required: true,
        }
    }

    fn best_effort(cause: Cause, why: &str) -> Step {
        Step {
            cause,
            why: why.into(),
            required: false,
        }
    }
}

/// What the worker does about a running engine's phase on one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Reaction {
    /// The pending sync edit's tables are all copied: its objects become the
    /// task's (before any step is applied).
    pub commit_edit: bool,
    /// Causes to apply, in order.
    pub steps: Vec<Step>,
}

/// What a pass saw of a task whose engine runs here.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen<'a> {
    /// The task's kind (its lifecycle table).
    pub kind: Kind,
    /// The task's state.
    pub state: State,
    /// Where the engine is.
    pub phase: &'a Phase,
    /// The engine runs a pending sync edit's objects.
    pub edit: bool,
    /// This run was in [`Phase::Full`] at some point (a pass can miss a short copy).
    pub entered_full: bool,
}

/// (Re)starting states: the engine's first phase tells where the task goes.
fn starting(state: State) -> bool {
    matches!(state, State::Starting | State::Recovering)
}

/// The causes that follow the phase of a running engine.
pub(super) fn running(s: Seen<'_>) -> Reaction {
    let mut r = Reaction::default();
    if s.edit && *s.phase == Phase::Incremental {
        // every added table is copied: the edited objects are the task's now
        r.commit_edit = true;
        if s.state == State::Changing {
            r.steps
                .push(Step::required(Cause::EditApplied, EDIT_APPLIED));
            return r;
        }
    }
    if *s.phase == Phase::Backfill && starting(s.state) {
        r.steps
            .push(Step::required(Cause::EditResumed, EDIT_RESUMED));
        return r;
    }
    let step = match s.phase {
        Phase::Full if starting(s.state) => Step::best_effort(Cause::FullStarted, COPYING),
        Phase::Incremental | Phase::CaughtUp
            if matches!(
                s.state,
                State::Starting
                    | State::Recovering
                    | State::Full
                    | State::Initializing
                    | State::Initialized
            ) =>
        {
            Step::best_effort(Cause::IncrementalStarted, STREAMING)
        }
        Phase::Recovering { reason } if s.state != State::Recovering => {
            Step::best_effort(Cause::Fault, reason)
        }
        _ => return r,
    };
    if step.cause == Cause::IncrementalStarted {
        // a copy shorter than a pass still shows in the history
        let mut state = s.state;
        if starting(state) && s.entered_full {
            r.steps.push(Step::best_effort(Cause::FullStarted, COPYING));
            state = lifecycle::next(s.kind, state, Cause::FullStarted).unwrap_or(state);
        }
        if state == State::Initializing {
            // DR: the initialisation finished before the stream began
            r.steps
                .push(Step::best_effort(Cause::FullDone, INITIALISED));
        }
    }
    r.steps.push(step);
    r
}

/// When an engine that was (re)starting failed: the cause that first places the
/// task in the phase the engine was in (the failure belongs to that phase).
pub(super) fn failed(state: State, phase: &Phase, edit: bool) -> Option<Step> {
    if !starting(state) {
        return None;
    }
    match phase {
        Phase::Full => Some(Step::required(Cause::FullStarted, COPYING)),
        Phase::Backfill | Phase::Starting if edit => {
            Some(Step::required(Cause::EditResumed, EDIT_RESUMED))
        }
        Phase::Incremental | Phase::Failed { .. } => {
            Some(Step::required(Cause::IncrementalStarted, STREAMING))
        }
        _ => None,
    }
}

/// When a `mode: full` copy completed: the cause that first records the copy, if a
/// pass never saw it (it finished before).
pub(super) fn completed(state: State) -> Option<Step> {
    (state != State::Full).then(|| Step::required(Cause::FullStarted, COPYING))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recovering() -> Phase {
        Phase::Recovering {
            reason: "connection reset".into(),
        }
    }

    fn failed_phase() -> Phase {
        Phase::Failed {
            error: "bad value".into(),
        }
    }

    fn seen(kind: Kind, state: State, phase: &Phase) -> Seen<'_> {
        Seen {
            kind,
            state,
            phase,
            edit: false,
            entered_full: false,
        }
    }

    fn causes(r: &Reaction) -> Vec<Cause> {
        r.steps.iter().map(|s| s.cause).collect()
    }

    #[test]
    fn a_finished_edit_is_committed_and_applied_while_changing() {
        let p = Phase::Incremental;
        let r = running(Seen {
            edit: true,
            ..seen(Kind::Sync, State::Changing, &p)
        });
        assert!(r.commit_edit);
        assert_eq!(
            r.steps,
            vec![Step::required(Cause::EditApplied, EDIT_APPLIED)]
        );
    }

    #[test]
    fn a_finished_edit_seen_while_restarting_is_committed_and_streams() {
        let p = Phase::Incremental;
        let r = running(Seen {
            edit: true,
            ..seen(Kind::Sync, State::Recovering, &p)
        });
        assert!(r.commit_edit);
        assert_eq!(
            r.steps,
            vec![Step::best_effort(Cause::IncrementalStarted, STREAMING)]
        );
        // already streaming: committed, nothing to record
        let r = running(Seen {
            edit: true,
            ..seen(Kind::Sync, State::Incremental, &p)
        });
        assert!(r.commit_edit && r.steps.is_empty());
    }

    #[test]
    fn an_edit_is_committed_only_once_its_tables_are_copied() {
        for p in [Phase::Backfill, Phase::CaughtUp, Phase::Starting] {
            let r = running(Seen {
                edit: true,
                ..seen(Kind::Sync, State::Changing, &p)
            });
            assert_eq!(r, Reaction::default(), "{p:?}");
        }
        // the edit flag alone commits nothing
        let p = Phase::Incremental;
        assert!(!running(seen(Kind::Sync, State::Changing, &p)).commit_edit);
    }

    #[test]
    fn a_backfill_after_a_restart_resumes_the_edit() {
        let p = Phase::Backfill;
        for state in [State::Starting, State::Recovering] {
            let r = running(seen(Kind::Sync, state, &p));
            assert_eq!(
                r.steps,
                vec![Step::required(Cause::EditResumed, EDIT_RESUMED)]
            );
            assert!(!r.commit_edit);
        }
        assert!(running(seen(Kind::Sync, State::Changing, &p))
            .steps
            .is_empty());
        assert!(running(seen(Kind::Sync, State::Incremental, &p))
            .steps
            .is_empty());
    }

    #[test]
    fn the_copy_starts_from_a_starting_state_only() {
        let p = Phase::Full;
        for state in [State::Starting, State::Recovering] {
            assert_eq!(
                running(seen(Kind::Migration, state, &p)).steps,
                vec![Step::best_effort(Cause::FullStarted, COPYING)]
            );
        }
        for state in [State::Full, State::Initializing, State::Incremental] {
            assert!(running(seen(Kind::Migration, state, &p)).steps.is_empty());
        }
    }

    #[test]
    fn streaming_or_caught_up_enters_incremental_from_a_copy_or_a_start() {
        for p in [Phase::Incremental, Phase::CaughtUp] {
            for state in [
                State::Starting,
                State::Recovering,
                State::Full,
                State::Initialized,
            ] {
                assert_eq!(
                    running(seen(Kind::Migration, state, &p)).steps,
                    vec![Step::best_effort(Cause::IncrementalStarted, STREAMING)],
                    "{state:?} {p:?}"
                );
            }
            for state in [State::Incremental, State::Changing, State::Paused] {
                assert!(running(seen(Kind::Sync, state, &p)).steps.is_empty());
            }
        }
    }

    #[test]
    fn a_dr_initialisation_is_done_before_the_stream() {
        let p = Phase::Incremental;
        assert_eq!(
            causes(&running(seen(Kind::Dr, State::Initializing, &p))),
            vec![Cause::FullDone, Cause::IncrementalStarted]
        );
    }

    #[test]
    fn a_copy_shorter_than_a_pass_still_shows() {
        let p = Phase::Incremental;
        let s = Seen {
            entered_full: true,
            ..seen(Kind::Migration, State::Starting, &p)
        };
        assert_eq!(
            causes(&running(s)),
            vec![Cause::FullStarted, Cause::IncrementalStarted]
        );
        // DR: the copy is the initialisation, done before the stream
        let s = Seen {
            entered_full: true,
            ..seen(Kind::Dr, State::Recovering, &p)
        };
        assert_eq!(
            causes(&running(s)),
            vec![
                Cause::FullStarted,
                Cause::FullDone,
                Cause::IncrementalStarted
            ]
        );
        // seen in the copy already: nothing more to show
        let s = Seen {
            entered_full: true,
            ..seen(Kind::Migration, State::Full, &p)
        };
        assert_eq!(causes(&running(s)), vec![Cause::IncrementalStarted]);
    }

    #[test]
    fn a_recovering_engine_is_a_fault_with_its_reason() {
        let p = recovering();
        for state in [State::Incremental, State::Full, State::Starting] {
            assert_eq!(
                running(seen(Kind::Sync, state, &p)).steps,
                vec![Step::best_effort(Cause::Fault, "connection reset")]
            );
        }
        assert!(running(seen(Kind::Sync, State::Recovering, &p))
            .steps
            .is_empty());
    }

    #[test]
    fn other_phases_record_nothing() {
        for p in [Phase::Starting, Phase::Stopped, failed_phase()] {
            for state in [State::Starting, State::Recovering, State::Incremental] {
                assert_eq!(running(seen(Kind::Sync, state, &p)), Reaction::default());
            }
        }
    }

    #[test]
    fn a_failure_while_starting_belongs_to_the_engines_phase() {
        for state in [State::Starting, State::Recovering] {
            assert_eq!(
                failed(state, &Phase::Full, false),
                Some(Step::required(Cause::FullStarted, COPYING))
            );
            for p in [Phase::Incremental, failed_phase()] {
                assert_eq!(
                    failed(state, &p, false),
                    Some(Step::required(Cause::IncrementalStarted, STREAMING))
                );
            }
            for p in [Phase::Backfill, Phase::Starting] {
                assert_eq!(
                    failed(state, &p, true),
                    Some(Step::required(Cause::EditResumed, EDIT_RESUMED))
                );
                assert_eq!(failed(state, &p, false), None);
            }
            for p in [Phase::CaughtUp, Phase::Stopped, recovering()] {
                assert_eq!(failed(state, &p, true), None);
            }
        }
    }

    #[test]
    fn a_failure_elsewhere_is_only_a_failure() {
        for state in [
            State::Full,
            State::Incremental,
            State::Changing,
            State::Initializing,
        ] {
            for p in [
                Phase::Full,
                Phase::Incremental,
                Phase::Backfill,
                failed_phase(),
            ] {
                assert_eq!(failed(state, &p, true), None);
            }
        }
    }

    #[test]
    fn a_completed_copy_shows_its_copy_once() {
        assert_eq!(
            completed(State::Starting),
            Some(Step::required(Cause::FullStarted, COPYING))
        );
        assert_eq!(completed(State::Full), None);
    }
}
