//! Reaping: a child's task has ended. The loop turns what the task returned
//! into an outcome and decides, under one registry lock, what comes next:
//! the attempt waits for its group, the child waits for its restart, or its
//! end is final (`Run::end_child`).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinError;
use tokio::time::Instant;

use super::Run;
use super::end::Ending;
use super::stop::AbortCause;
use super::task::{TaskOutput, panic_message};
use super::timers::{TimerKind, later};
use crate::control::{ChildCore, ChildKey, EventKind, Outcome};
use crate::manager::events;
use crate::manager::registry::{GroupRole, Stage};
use crate::manager::{Restart, Strategy};

impl Run<'_> {
    pub(super) fn reap(&mut self, joined: Result<TaskOutput, JoinError>) {
        let now = Instant::now();
        let Some((key, mut outcome, abort)) = self.outcome_of(joined) else {
            return;
        };
        // One lock for the whole decision; what runs user code or takes
        // other locks happens after it.
        let shared = self.shared;
        let mut registry = shared.registry();
        let Some(record) = registry.get_mut(key) else {
            return;
        };
        if !matches!(record.stage(), Stage::Running(_)) {
            return;
        }
        let core = Arc::clone(&record.core);
        if matches!(outcome, Outcome::Aborted) {
            if let Some(nested) = record.runnable.as_manager() {
                // A nested manager aborted before its run was first polled
                // never ran, so nothing resolved its children's handles; one
                // that ran did this as its run was dropped. After the lock:
                // it drops the nested manager's processes.
                drop(registry);
                nested.shared().abandon();
                registry = shared.registry();
                if registry.get(key).is_none() {
                    return;
                }
            }
        }
        let Some(record) = registry.get_mut(key) else {
            return;
        };
        let Stage::Running(attempt) = record.stage() else {
            return;
        };
        // Published after the lock, before what follows from the end.
        let failure = match &outcome {
            Outcome::Failed(error) => Some(EventKind::Failed(Arc::clone(error))),
            Outcome::Panicked(message) => Some(EventKind::Panicked(message.clone())),
            _ => None,
        };
        if let (None, Some(handle)) = (abort, &attempt.abort) {
            if !self.aborting.is_empty() {
                // It finished on its own just as it was being aborted.
                self.aborting.remove(&handle.id());
            }
        }
        if matches!(outcome, Outcome::Completed) && attempt.token.is_cancelled() {
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
        let ran_for = now.saturating_duration_since(attempt.started);
        let order = attempt.order;
        let role = attempt.group;

        // Stopped on purpose to restart with its group, which decides
        // whether it starts again.
        if role != GroupRole::None && self.group.is_some() {
            let left = record.set_stage(Stage::Held {
                last: Box::new(outcome),
                order,
            });
            drop(registry);
            // The attempt may hold the one before's error: after the lock.
            drop(left);
            self.publish_failure(&core, failure);
            self.down_until_restarted(&core);
            self.group_member_ended(role == GroupRole::Stopping);
            return;
        }

        // Not when asked to stop for good (its handle, or the manager
        // stopping), nor when its policy says no. The policy first: a token
        // check takes the token's lock.
        let wanted = match core.policy.restart {
            Restart::Never => false,
            Restart::OnFailure => failed,
            Restart::Always => true,
        } && !self.phase.is_stopping()
            && !core.token.is_cancelled();
        let mut exceeded = None;
        if let (true, Some(state)) = (wanted, record.restart.as_mut()) {
            if state.allow_restart(now) {
                let delay = state.next_delay(failed, ran_for, self.random.next());
                if failed {
                    events::attempt_failed(&self.scope.path, &core.name, core.id, &outcome);
                }
                let last = Box::new(outcome);
                // A background helper's restart never takes workers with it.
                let alone =
                    core.policy.background || self.shared.settings.strategy == Strategy::OneForOne;
                let left = if alone {
                    let at = later(now, delay);
                    let left = record.set_stage(Stage::Backoff { at, last, order });
                    self.scheduled += 1;
                    self.timers.set(at, TimerKind::Restart, record);
                    left
                } else {
                    record.set_stage(Stage::Held { last, order })
                };
                drop(registry);
                drop(left);
                self.publish_failure(&core, failure);
                self.down_until_restarted(&core);
                if !alone {
                    self.restart_with_siblings(key, failed, delay);
                }
                self.announce_restart(&core, delay);
                return;
            }
            exceeded = Some(state.limit);
        }
        drop(registry);
        self.publish_failure(&core, failure);
        self.end_child(
            key,
            Ending::Attempt {
                outcome,
                abort,
                exceeded,
            },
        );
    }

    /// The child, its outcome and why it was aborted, from what its task
    /// returned. Reading a panic's payload and dropping it runs user code, so
    /// this happens before the registry lock.
    fn outcome_of(
        &mut self,
        joined: Result<TaskOutput, JoinError>,
    ) -> Option<(ChildKey, Outcome, Option<AbortCause>)> {
        let (key, returned) = match joined {
            Ok((key, returned)) => (key, returned),
            Err(error) => {
                if let Some((key, cause)) = self.aborting.remove(&error.id()) {
                    return Some((key, Outcome::Aborted, Some(cause)));
                }
                // A panic outside the caught future (in a tracing
                // subscriber's span enter or exit), or the runtime shutting
                // down. Rare enough that finding the child by a scan is fine.
                let key = self.key_of_task(error.id())?;
                if !error.is_panic() {
                    return Some((key, Outcome::Aborted, None));
                }
                (key, Err(error.into_panic()))
            }
        };
        let outcome = match returned {
            Ok(Ok(())) => Outcome::Completed,
            Ok(Err(error)) => Outcome::Failed(Arc::from(error)),
            Err(payload) => Outcome::Panicked(panic_message(&*payload)),
        };
        Some((key, outcome, None))
    }

    /// The child whose running attempt is the task with this id.
    fn key_of_task(&self, task: tokio::task::Id) -> Option<ChildKey> {
        let registry = self.shared.registry();
        registry.records().find_map(|record| {
            record
                .attempt()
                .and_then(|attempt| attempt.abort.as_ref())
                .is_some_and(|abort| abort.id() == task)
                .then(|| record.key())
        })
    }

    /// A child waiting for its restart is not ready, whatever its last
    /// attempt said; its next attempt starts unready.
    pub(super) fn down_until_restarted(&self, core: &ChildCore) {
        if core.close_attempt() && core.policy.reports_ready {
            self.shared.readiness_changed(false);
        }
    }

    fn publish_failure(&self, core: &ChildCore, failure: Option<EventKind>) {
        if let Some(kind) = failure {
            self.scope
                .events
                .publish(&self.scope.path, Some(&core.name), core.id, || kind);
        }
    }

    fn announce_restart(&self, core: &ChildCore, delay: Duration) {
        let attempt = core.attempt() + 1;
        events::child_restarting(&self.scope.path, &core.name, core.id, attempt, delay);
        self.scope
            .events
            .publish(&self.scope.path, Some(&core.name), core.id, || {
                EventKind::Restarting { attempt, delay }
            });
    }
}
