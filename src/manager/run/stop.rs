//! Stopping: the manager's graceful-then-forced stop, the ordered stop, the
//! background children stopped last, and the grace period of a child
//! stopped through its own handle.
//!
//! With a drain period, a graceful request first moves the phase to
//! `Draining` (the manager reports unready, its children run on), and the
//! stop begins when the drain is over, or at once when the manager's token
//! is cancelled by a force or a failure.
//!
//! The manager's stop, in order:
//! 1. The phase becomes `Stopping` with the manager's grace deadline, under
//!    the registry lock, so inserts are refused from then on.
//! 2. The manager's token is cancelled, and every running child but the
//!    background ones is asked to stop (`ChildCore::stop`); with ordered
//!    stop the loop asks them one by one instead, newest first.
//! 3. Children waiting for a restart end at once with their last outcome:
//!    shutdown wins over restarts. Children still queued by an ordered start
//!    start, and stop at once.
//! 4. Children with a grace period of their own get an abort timer; the rest
//!    are aborted when the phase's deadline passes.
//! 5. When no child but background ones is left, the phase becomes
//!    `StoppingBackground` and those are asked to stop, each with its grace
//!    period; when none is left, the run finishes.

use std::collections::hash_map::Entry;
use std::time::Duration;

use tokio::time::Instant;

use super::Run;
use super::end::Ending;
use super::timers::{TimerKind, later};
use crate::control::{ChildKey, Context, EventKind, ShutdownReason};
use crate::manager::events;
use crate::manager::registry::{Phase, Record, Stage};

/// Why the loop aborted a task.
#[derive(Debug, Clone, Copy)]
pub(super) enum AbortCause {
    Grace(Duration),
    /// A forced shutdown, which waits for no grace period.
    Forced,
    StartTimeout(Duration),
    Wedged(Duration),
}

impl Run<'_> {
    /// A graceful shutdown was requested and the manager has a drain period:
    /// it reports unready and runs on until the drain is over, when
    /// [`timers_due`](Run::timers_due) begins the stop. A cancelled token (a
    /// force, a failure) begins it sooner.
    pub(super) fn begin_drain(&mut self) {
        let drain = self.shared.settings.drain;
        self.enter(Phase::Draining {
            until: later(Instant::now(), drain),
        });
        if !self.drained {
            self.drained = true;
            self.shared.readiness_changed(false);
        }
        let reason = self.shared.reason.get();
        events::manager_draining(&self.scope.path, drain, reason.as_ref());
        self.scope
            .events
            .publish(&self.scope.path, None, self.own_id, || {
                EventKind::Draining {
                    period: drain,
                    reason: reason.unwrap_or(ShutdownReason::Requested),
                }
            });
    }

    /// Steps 1 to 4 of the stop.
    pub(super) fn begin_stop(&mut self, parent: Option<&Context>) {
        let now = Instant::now();
        let grace = self.shared.settings.grace;
        self.enter(Phase::Stopping {
            deadline: Some(later(now, grace)),
            forced: false,
        });
        self.awaiting_ready = None;
        if self.group.take().is_some() {
            // Inserts that waited for the group start (and stop) now.
            self.work_for_next_turn();
        }
        self.shared.stop_run(&self.shared.registry());
        if let Some(ctx) = parent {
            // Tell the parent that this manager was asked to stop, so that
            // its outcome there reads "stopped".
            ctx.cancel();
        }
        let reason = self.shared.reason.get();
        events::manager_stopping(self.shared, &self.scope.path, reason.as_ref());
        self.scope
            .events
            .publish(&self.scope.path, None, self.own_id, || {
                EventKind::ShutdownRequested(reason.unwrap_or(ShutdownReason::Requested))
            });
        let ordered = self.shared.settings.ordered_stop;
        let mut waiting = Vec::new();
        {
            let shared = self.shared;
            let mut registry = shared.registry();
            for record in registry.records_mut() {
                let background = record.core.policy.background();
                match record.stage() {
                    Stage::Backoff { .. } => waiting.push((record.key(), Ending::Waiting)),
                    // A held member without a restart policy would have
                    // ended for good with its group: its failure counts.
                    Stage::Held { .. } if record.restart.is_none() => {
                        waiting.push((record.key(), Ending::Group));
                    }
                    Stage::Held { .. } => waiting.push((record.key(), Ending::Waiting)),
                    Stage::Running(attempt) if ordered && !background => {
                        self.stop_order.push((attempt.order, record.key()));
                    }
                    Stage::Running(_) if !background => {
                        if let Some(grace) = record.core.grace() {
                            self.timers.set(later(now, grace), TimerKind::Abort, record);
                        }
                    }
                    Stage::Pending | Stage::Running(_) | Stage::Ended => {}
                }
            }
            self.start_queued(&mut registry, now);
        }
        // Lowest first, so the child started last is asked first.
        self.stop_order.sort_unstable();
        self.flush_spawns();
        for (key, ending) in waiting {
            self.end_child(key, ending);
        }
        if ordered {
            self.stop_next_in_order(now);
        }
    }

    /// Ordered stop: asks the next child once the one before has ended.
    pub(super) fn stop_next_in_order(&mut self, now: Instant) {
        let deadline = match self.phase {
            Phase::Stopping { deadline, .. } => deadline,
            _ => return,
        };
        let shared = self.shared;
        let mut registry = shared.registry();
        let running = |key: ChildKey, registry: &crate::manager::registry::Registry| {
            registry
                .get(key)
                .is_some_and(|record| matches!(record.stage(), Stage::Running(_)))
        };
        if self
            .stopping_in_order
            .is_some_and(|key| running(key, &registry))
        {
            return;
        }
        self.stopping_in_order = None;
        while let Some((_, key)) = self.stop_order.pop() {
            if !running(key, &registry) {
                continue;
            }
            let Some(record) = registry.get_mut(key) else {
                continue;
            };
            // Its grace period starts now, even if it cancelled its own token
            // before (a nested manager stopping by itself).
            record.core.stop();
            let own = later(now, self.grace_of(record));
            let at = deadline.map_or(own, |overall| overall.min(own));
            self.timers.set(at, TimerKind::Abort, record);
            self.stopping_in_order = Some(key);
            return;
        }
    }

    /// Step 5: asks the background children to stop, once no other child is
    /// left; an insert that waits is spawned first, on the next turn.
    pub(super) fn stop_background(&mut self) {
        let now = Instant::now();
        let mut waiting = Vec::new();
        {
            let shared = self.shared;
            let mut registry = shared.registry();
            if registry.has_pending() {
                return;
            }
            self.enter_locked(&mut registry, Phase::StoppingBackground);
            // The manager is stopping, and says so to anyone who asks
            // (`is_shutdown_requested`), the same as the insert it refuses
            // from now on. No reason is set: nobody asked.
            self.token.cancel();
            for record in registry.records_mut() {
                if !record.core.policy.background() {
                    continue;
                }
                match record.stage() {
                    Stage::Backoff { .. } | Stage::Held { .. } => waiting.push(record.key()),
                    Stage::Running(_) => {
                        record.core.stop();
                        self.arm_grace(record, now);
                    }
                    Stage::Pending | Stage::Ended => {}
                }
            }
        }
        for key in waiting {
            self.end_child(key, Ending::Waiting);
        }
    }

    /// Aborts every child but the background ones at once.
    pub(super) fn force(&mut self) {
        let deadline = match self.phase {
            Phase::Stopping { deadline, .. } => deadline,
            _ => None,
        };
        self.enter(Phase::Stopping {
            deadline,
            forced: true,
        });
        let shared = self.shared;
        let mut registry = shared.registry();
        for record in registry.records_mut() {
            if !record.core.policy.background() {
                self.abort(record, AbortCause::Forced);
            }
        }
    }

    /// The manager's grace period is over: aborts the children it covers.
    pub(super) fn abort_late_children(&mut self) {
        let ordered = self.shared.settings.ordered_stop;
        let grace = self.shared.settings.grace;
        let shared = self.shared;
        let mut registry = shared.registry();
        for record in registry.records_mut() {
            // With ordered stop the manager's grace period bounds the whole
            // sequence; otherwise children with a grace period of their own
            // have a timer of their own.
            if !record.core.policy.background() && (ordered || record.core.grace().is_none()) {
                self.abort(record, AbortCause::Grace(grace));
            }
        }
    }

    /// Children stopped through their own handle: a running one gets its
    /// grace period, one waiting for a restart ends now.
    pub(super) fn handle_stop_requests(&mut self, requests: Vec<ChildKey>, now: Instant) {
        let mut waiting = Vec::new();
        {
            let shared = self.shared;
            let mut registry = shared.registry();
            for key in requests {
                let Some(record) = registry.get_mut(key) else {
                    continue;
                };
                match record.stage() {
                    Stage::Running(_) => self.arm_grace(record, now),
                    Stage::Backoff { .. } => waiting.push(key),
                    // A pending child's grace period starts when it is
                    // spawned; a held one ends when its group restarts.
                    Stage::Pending | Stage::Held { .. } | Stage::Ended => {}
                }
            }
        }
        for key in waiting {
            self.end_child(key, Ending::Waiting);
        }
    }

    /// The child's grace period: its own, or the manager's.
    pub(super) fn grace_of(&self, record: &Record) -> Duration {
        record.core.grace().unwrap_or(self.shared.settings.grace)
    }

    /// Starts the grace period of the record's running attempt: when it
    /// ends, the attempt is aborted.
    pub(super) fn arm_grace(&mut self, record: &Record, now: Instant) {
        let grace = self.grace_of(record);
        self.timers.set(later(now, grace), TimerKind::Abort, record);
    }

    /// Aborts the record's running attempt, once.
    pub(super) fn abort(&mut self, record: &Record, cause: AbortCause) {
        let Some(task) = record.attempt().and_then(|attempt| attempt.task.as_ref()) else {
            return;
        };
        if let Entry::Vacant(entry) = self.aborting.entry(record.key()) {
            let core = &record.core;
            let grace = match cause {
                AbortCause::Grace(grace)
                | AbortCause::StartTimeout(grace)
                | AbortCause::Wedged(grace) => Some(grace),
                AbortCause::Forced => None,
            };
            let failure = match cause {
                // Stopped through its own handle, it did what was asked.
                AbortCause::Grace(_) if core.was_asked_to_stop() => None,
                AbortCause::Grace(_) | AbortCause::Forced => Some(events::Cause::Aborted),
                AbortCause::StartTimeout(_) => Some(events::Cause::StartTimeout),
                AbortCause::Wedged(_) => Some(events::Cause::Wedged),
            };
            events::child_aborting(self.shared, core, grace, failure);
            self.scope
                .events
                .publish(&self.scope.path, Some(&core.name), core.id, || {
                    EventKind::Aborted
                });
            if let Some(polls) = core.polls() {
                polls.note_abort();
            }
            task.abort();
            entry.insert(cause);
        }
    }
}
