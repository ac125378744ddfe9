//! Reaping: a child's task has ended. The loop turns what the task returned
//! into an outcome and decides, under one registry lock, what comes next:
//! the attempt waits for its group, the child waits for its restart, or its
//! end is final (`Run::end_child`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Run;
use super::end::{Ending, Exceeded};
use super::stop::AbortCause;
use super::task::panic_message;
use super::timers::{TimerKind, later};
use crate::control::{AttemptEnd, ChildCore, ChildKey, EventKind, Outcome};
use crate::manager::events;
use crate::manager::registry::{GroupRole, Stage};
use crate::policy::{Restart, Strategy};

/// What follows an attempt's end, decided under the registry lock and done
/// after it.
enum Next {
    /// Held for its group restart; `asked` if the group had asked it to stop.
    Held { asked: bool },
    /// Waits for its restart after `delay`, alone or with its group;
    /// `failure` is the attempt's failure, kept for the log only when a
    /// logging feature is on.
    Restart {
        delay: Duration,
        failed: bool,
        failure: Option<Outcome>,
        alone: bool,
    },
    /// Its end is final.
    End(Ending),
}

/// The outcome's message for a panic that unwound a child's task outside
/// its caught future, whose payload the manager never sees.
const PANICKED_OUTSIDE: &str = "panicked outside the process's future, while its task was dropped";

/// The most ends the loop's list keeps room for between turns.
const KEPT_ENDS: usize = 64;

impl Run<'_> {
    /// Reaps every attempt whose end its task has reported, in the order
    /// they ended; returns how many.
    pub(super) fn reap_ended(&mut self) -> usize {
        let mut ended = std::mem::take(&mut self.ended);
        self.shared.take_ended(&mut ended);
        let count = ended.len();
        for (key, end) in ended.drain(..) {
            self.reap(key, end);
        }
        // Kept for the next turn, if small: this list and the manager's
        // trade places at every turn, so a burst's capacity would stay in
        // both (40 bytes per end), long after the burst.
        if ended.capacity() <= KEPT_ENDS {
            self.ended = ended;
        }
        count
    }

    fn reap(&mut self, key: ChildKey, end: AttemptEnd) {
        let (outcome, abort) = self.outcome_of(key, end);
        if matches!(outcome, Outcome::Aborted) {
            self.abandon_if_nested(key);
        }
        // Published after the lock, before what follows from the end.
        let failure = match &outcome {
            Outcome::Failed(error) => Some(EventKind::Failed(Arc::clone(error))),
            Outcome::Panicked(message) => Some(EventKind::Panicked(message.clone())),
            _ => None,
        };
        let Some((core, next)) = self.decide(key, outcome, abort) else {
            return;
        };
        if let Some(kind) = failure {
            let cause = match kind {
                EventKind::Panicked(_) => events::Cause::Panic,
                _ => events::Cause::Error,
            };
            events::failure(self.shared, &core, cause);
            self.scope
                .events
                .publish(&self.scope.path, Some(&core.name), core.id, || kind);
        }
        match next {
            Next::Held { asked } => {
                self.down_until_restarted(&core);
                self.group_member_ended(asked);
            }
            Next::Restart {
                delay,
                failed,
                failure,
                alone,
            } => {
                if let Some(outcome) = &failure {
                    // Formats the user's error: not under the lock.
                    events::attempt_failed(&self.scope.path, &core.name, core.id, outcome);
                }
                self.down_until_restarted(&core);
                if !alone {
                    self.restart_with_siblings(key, failed, delay);
                }
                let attempt = core.attempt() + 1;
                events::child_restarting(&self.scope.path, &core.name, core.id, attempt, delay);
                self.scope
                    .events
                    .publish(&self.scope.path, Some(&core.name), core.id, || {
                        EventKind::Restarting { attempt, delay }
                    });
            }
            Next::End(ending) => {
                // `end_child` wakes the child's waiters only if someone else
                // holds its core: this reference must not count.
                drop(core);
                self.end_child(key, ending);
            }
        }
    }

    /// Under one registry lock: the attempt's stage after its end, and what
    /// is left to do after the lock.
    fn decide(
        &mut self,
        key: ChildKey,
        mut outcome: Outcome,
        abort: Option<AbortCause>,
    ) -> Option<(Arc<ChildCore>, Next)> {
        let shared = self.shared;
        let mut registry = shared.registry();
        let record = registry.get_mut(key)?;
        let Stage::Running(attempt) = record.stage() else {
            return None;
        };
        let core = Arc::clone(&record.core);
        if matches!(outcome, Outcome::Completed) && core.stop_reached(core.attempt()) {
            outcome = Outcome::Stopped;
        }
        let failed = matches!(
            (&outcome, abort),
            (Outcome::Failed(_) | Outcome::Panicked(_), _)
                | (
                    Outcome::Aborted,
                    Some(AbortCause::StartTimeout(_) | AbortCause::Wedged(_))
                )
        );
        let started = attempt.started(self.scope.started);
        let order = attempt.order;
        let role = attempt.group;
        // The stage left behind may hold the attempt before's error: it is
        // dropped after the lock.
        let mut left = None;

        let next = if role != GroupRole::None && self.group_is_stopping() {
            // Stopped on purpose to restart with its group, which decides
            // whether it starts again.
            let last = Box::new(outcome);
            left = Some(record.set_stage(Stage::Held { last, order }));
            Next::Held {
                asked: role == GroupRole::Stopping,
            }
        } else {
            // Not when asked to stop for good (its handle, or the manager
            // stopping), nor when its policy says no. The policy first: a
            // token check takes the token's lock.
            let wanted = match record.restart.as_ref().map(|state| state.policy) {
                Some(Restart::OnFailure) => failed,
                Some(Restart::Always) => true,
                Some(Restart::Never) | None => false,
            } && !self.phase.is_stopping()
                && !core.is_stopped();
            let mut state = record.restart.as_mut().filter(|_| wanted);
            // The clock is read only for a child that may be restarted.
            let now = if state.is_some() {
                Instant::now()
            } else {
                started
            };
            let allowed = state.as_mut().is_some_and(|state| state.allow_restart(now));
            // The child's own limit first, then its manager's. Checked only
            // here, for a child restarted on its own account: a group's
            // members are held above, so a group restart counts once.
            let limit = self.shared.settings.restart_limit;
            let within = allowed && limit.is_none_or(|limit| self.restarts.allow(limit, now));
            match state {
                Some(_) if allowed && !within => Next::End(Ending::Attempt {
                    outcome,
                    abort,
                    exceeded: limit.map(Exceeded::Manager),
                }),
                Some(state) if allowed => {
                    let ran_for = now.saturating_duration_since(started);
                    let delay = state.next_delay(failed, ran_for, self.random.next());
                    let failure = (failed && events::LOGS).then(|| outcome.clone());
                    let last = Box::new(outcome);
                    // A background helper's restart never takes workers with
                    // it.
                    let alone = core.policy.background()
                        || self.shared.settings.strategy == Strategy::OneForOne;
                    if alone {
                        let at = later(now, delay);
                        left = Some(record.set_stage(Stage::Backoff { at, last, order }));
                        self.timers.set(at, TimerKind::Restart, record);
                    } else {
                        left = Some(record.set_stage(Stage::Held { last, order }));
                    }
                    Next::Restart {
                        delay,
                        failed,
                        failure,
                        alone,
                    }
                }
                state => Next::End(Ending::Attempt {
                    outcome,
                    abort,
                    exceeded: state.map(|state| Exceeded::Child(state.limit)),
                }),
            }
        };
        drop(registry);
        drop(left);
        Some((core, next))
    }

    /// A nested manager aborted before its run was first polled never ran,
    /// so nothing resolved its children's handles; one that ran did this as
    /// its run was dropped. Not under the lock: it drops the nested
    /// manager's processes.
    fn abandon_if_nested(&self, key: ChildKey) {
        let nested = self
            .shared
            .registry()
            .get(key)
            .and_then(|record| record.runnable.as_manager());
        if let Some(nested) = nested {
            nested.shared().abandon(true);
        }
    }

    /// The outcome of an attempt, and why it was aborted, from what its
    /// task reported. Reading a panic's payload and dropping it runs user
    /// code, so this happens before the registry lock.
    fn outcome_of(&mut self, key: ChildKey, end: AttemptEnd) -> (Outcome, Option<AbortCause>) {
        // Every end clears its abort, also one that finished on its own just
        // as it was aborted: the child's next attempt has the same key.
        let aborted = if self.aborting.is_empty() {
            None
        } else {
            self.aborting.remove(&key)
        };
        match end {
            AttemptEnd::Returned(Ok(())) => (Outcome::Completed, None),
            AttemptEnd::Returned(Err(error)) => (Outcome::Failed(Arc::from(error)), None),
            AttemptEnd::Panicked(payload) => (Outcome::Panicked(panic_message(&*payload)), None),
            // Aborted by this loop, or dropped by the runtime shutting down.
            AttemptEnd::Dropped { panicking } => match aborted {
                None if panicking => (Outcome::Panicked(PANICKED_OUTSIDE.to_owned()), None),
                aborted => (Outcome::Aborted, aborted),
            },
        }
    }

    /// A child waiting for its restart is not ready, whatever its last
    /// attempt said; its next attempt starts unready.
    pub(super) fn down_until_restarted(&self, core: &ChildCore) {
        if core.close_attempt() && core.policy.reports_ready() {
            self.shared.readiness_changed(false);
        }
    }
}
