//! The one transition to a child's final end. Every way a child can end for
//! good (its attempt ends and is not restarted, its restart is called off by
//! a stop, its group restarts without it) goes through [`Run::end_child`],
//! and nothing else does what it does:
//!
//! 1. Under the registry lock: the record leaves the registry (or, with
//!    auto-cleanup off, stays as `Ended`), its name is free again, void
//!    timers are swept and memory given back after a burst.
//! 2. After the lock: the run's counts, the manager's readiness count, the
//!    failure (if it escalates), the manager's stop (if the child is
//!    significant), the events, and last the outcome its handles wait for.
//!    The removed record, and with it the user's process, is dropped here,
//!    outside the lock.

use std::sync::Arc;

use super::Run;
use super::stop::AbortCause;
use crate::control::{ChildCore, ChildKey, EventKind, Outcome, ShutdownReason};
use crate::error::{ChildFailure, ChildFailures, FailureCause, RunError};
use crate::manager::events;
use crate::manager::registry::Stage;
use crate::policy::RestartLimit;

/// How a child's end became final.
pub(super) enum Ending {
    /// Its attempt ended with `outcome` and is not restarted: its policy
    /// says no, a restart limit is `exceeded`, or it was asked to stop.
    Attempt {
        outcome: Outcome,
        abort: Option<AbortCause>,
        exceeded: Option<Exceeded>,
    },
    /// Its group restarts without it (no restart policy, or stopped through
    /// its handle meanwhile): like an attempt that ended with the outcome it
    /// was held with.
    Group,
    /// It waited for a restart, or was never started, and was stopped: by
    /// its handle or by the manager. It ends with its last outcome; its
    /// failure, if that was one, was answered by the restart policy and
    /// does not escalate.
    Waiting,
}

/// The restart limit that kept a child from being restarted.
#[derive(Clone, Copy)]
pub(super) enum Exceeded {
    /// Its own: its failure is handled as if it had no restart policy.
    Child(RestartLimit),
    /// Its manager's, over all of its children: the manager fails, whatever
    /// the child's `escalate`.
    Manager(RestartLimit),
}

impl Run<'_> {
    /// Makes the child's end final; does nothing if it already is.
    pub(super) fn end_child(&mut self, key: ChildKey, ending: Ending) {
        let keep = !self.shared.settings.auto_cleanup;
        let (core, left, removed) = {
            let shared = self.shared;
            let mut registry = shared.registry();
            let Some((core, left, removed)) = registry.end(key, keep) else {
                return;
            };
            self.timers.sweep(&registry);
            // A manager that stops gives everything back when it ends.
            if !self.phase.is_stopping() {
                registry.shrink();
            }
            (core, left, removed)
        };
        drop(removed);
        if matches!(left, Stage::Backoff { .. }) && self.backoff_is_group(&core) {
            self.left_group_backoff();
        }
        if core.policy.background() {
            self.background -= 1;
        } else {
            self.foreground -= 1;
        }
        if self.awaiting_ready == Some(key) {
            self.awaiting_ready = None;
        }
        // An ended child no longer holds its manager's readiness back.
        if !core.close_attempt() && core.policy.reports_ready() {
            self.shared.readiness_changed(true);
        }
        let last = match left {
            Stage::Backoff { last, .. } | Stage::Held { last, .. } => Some(*last),
            Stage::Pending | Stage::Running(_) | Stage::Ended => None,
        };
        let in_group = matches!(ending, Ending::Group);
        let outcome = match ending {
            Ending::Attempt {
                outcome,
                abort,
                exceeded,
            } => {
                self.escalate(&core, &outcome, abort, exceeded);
                outcome
            }
            Ending::Group => {
                let outcome = last.unwrap_or(Outcome::Stopped);
                self.escalate(&core, &outcome, None, None);
                outcome
            }
            Ending::Waiting => last.unwrap_or(Outcome::Stopped),
        };
        // A significant child ends its manager when it ended by itself, or
        // was stopped through its own handle; not when its manager stopped
        // it, to stop for good or to restart it with its group (OTP's
        // rule). A group member without a restart policy that stopped as
        // its group asked ends as `Stopped` or `Aborted`; one that completed
        // or failed before it was asked ended by itself.
        let by_itself = !in_group
            || core.was_asked_to_stop()
            || !matches!(outcome, Outcome::Stopped | Outcome::Aborted);
        if core.policy.significant() && by_itself && !self.phase.is_stopping() {
            self.shared.reason.set(ShutdownReason::ChildEnded {
                path: self.child_path(&core.name),
            });
            self.shared.stop_run(&self.shared.registry());
        }
        events::child_ended(&self.scope.path, &core.name, core.id, &outcome);
        self.scope
            .events
            .publish(&self.scope.path, Some(&core.name), core.id, || {
                EventKind::Stopped(outcome.clone())
            });
        // With auto-cleanup this is often the last reference: no handle or
        // context is left to see the outcome, so there is no one to wake.
        // The inbox is closed either way: a reload it has not taken no
        // longer holds its manager's reloads back.
        if Arc::strong_count(&core) > 1 {
            core.finish(outcome);
        } else {
            core.close_inbox();
        }
    }

    /// Records the child's failure if its outcome is one and it escalates.
    fn escalate(
        &mut self,
        core: &ChildCore,
        outcome: &Outcome,
        abort: Option<AbortCause>,
        exceeded: Option<Exceeded>,
    ) {
        let managers = matches!(exceeded, Some(Exceeded::Manager(_)));
        if !core.policy.escalate() && !managers {
            return;
        }
        let cause = match (outcome, abort) {
            (Outcome::Failed(error), _) => FailureCause::Error(Arc::clone(error)),
            (Outcome::Panicked(message), _) => FailureCause::Panic(message.clone()),
            (Outcome::Aborted, Some(AbortCause::StartTimeout(timeout))) => {
                FailureCause::StartTimeout { timeout }
            }
            (Outcome::Aborted, Some(AbortCause::Wedged(timeout))) => {
                FailureCause::Wedged { timeout }
            }
            // A child stopped through its own handle and aborted after its
            // grace period has done what was asked: it stopped. Only aborts
            // during the manager's own stop count as failures.
            (Outcome::Aborted, _) if core.was_asked_to_stop() => return,
            (Outcome::Aborted, Some(AbortCause::Grace(grace))) => FailureCause::Aborted { grace },
            (Outcome::Aborted, Some(AbortCause::Forced)) => FailureCause::Forced {
                signal: match self.shared.reason.get() {
                    Some(ShutdownReason::Forced(signal)) => Some(signal),
                    _ => None,
                },
            },
            // Its manager's limit fails the manager however the child ended.
            _ if managers => FailureCause::Exited,
            _ => return,
        };
        // A nested manager's failures already carry full paths.
        let nested = match (outcome, exceeded) {
            (Outcome::Failed(error), None) => error
                .downcast_ref::<RunError>()
                .and_then(RunError::failures)
                .cloned(),
            _ => None,
        };
        match nested {
            Some(failures) => {
                for failure in failures.iter() {
                    self.record_failure(failure.clone());
                }
            }
            None => {
                let mut failure = ChildFailure::new(self.child_path(&core.name), core.id, cause)
                    .in_attempt(core.attempt());
                match exceeded {
                    Some(Exceeded::Child(limit)) => failure = failure.exceeding(limit),
                    Some(Exceeded::Manager(limit)) => failure = failure.exceeding_manager(limit),
                    None => {}
                }
                if let (Outcome::Aborted, Some(polls)) = (outcome, core.polls()) {
                    failure = failure.blocked(polls.take_blocked_at_abort());
                }
                self.record_failure(failure);
            }
        }
    }

    fn record_failure(&mut self, failure: ChildFailure) {
        match &mut self.failures {
            Some(failures) => failures.push(failure),
            None => {
                self.shared.reason.set(ShutdownReason::ChildFailed {
                    path: failure.path().to_owned(),
                });
                self.failures = Some(ChildFailures::new(failure));
                // Requesting shutdown through the token lets the loop's
                // shutdown branch run the stop, same as any other request.
                self.shared.stop_run(&self.shared.registry());
            }
        }
    }

    pub(super) fn child_path(&self, name: &str) -> String {
        format!("{}/{name}", self.scope.path)
    }
}
