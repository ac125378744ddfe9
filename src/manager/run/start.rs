//! Starting attempts: accepted inserts, the ordered start, restarts that
//! come due, and the handles' stop requests the loop picks up on its turn.
//!
//! An attempt is prepared under the registry lock (its stage, its token, its
//! timers) and launched (its start event, span and context made) and spawned
//! just after it, so that inserting tasks do not wait while the loop
//! launches a batch.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::Run;
use super::stop::AbortCause;
use super::task::{DynRunnable, Launch, SlowPolls};
use super::timers::{TimerKind, later};
use crate::control::{ChildCore, Context, EventKind};
use crate::manager::registry::{Attempt, Phase, Record, Registry, Stage};

/// How many accepted children one turn prepares under one lock before it
/// spawns them.
const SPAWN_BATCH: usize = 256;

/// An attempt prepared under the registry lock, to be launched (its event,
/// span and context made) and spawned after it.
pub(super) struct Prepared {
    core: Arc<ChildCore>,
    attempt: u32,
    seen_reloads: u32,
}

/// What a restart that came due did.
pub(super) enum RestartDue {
    /// The next attempt runs; `in_group` if it restarted with its group.
    Started { in_group: bool },
    /// The child was stopped through its handle: its end is to be made
    /// final.
    Stopped,
}

impl Run<'_> {
    /// Everything the loop does between waits: spawn accepted children,
    /// start grace periods of children stopped through their handle, follow
    /// the ordered start and stop, force.
    pub(super) fn turn(&mut self) {
        let work = self.shared.work.swap(false, Ordering::AcqRel);
        let starting = self.awaiting_ready.is_some()
            || !self.start_queue.is_empty()
            || self.has_queued_members();
        if work || starting {
            let now = Instant::now();
            let mut pending = Vec::new().into_iter();
            let requests = {
                let shared = self.shared;
                let mut guard = shared.registry();
                let registry = &mut *guard;
                // A child inserted while a group restarts waits for the
                // group, so that it never runs beside stopped siblings.
                if self.group.is_none() {
                    pending = registry.take_pending().into_iter();
                    self.launch_pending(registry, &mut pending, now);
                }
                let requests = registry.take_stop_requests();
                if let Some(awaited) = self.awaiting_ready {
                    // A child restarting before it was ready is still
                    // awaited.
                    let gone = registry
                        .get(awaited)
                        .is_none_or(|record| matches!(record.stage(), Stage::Ended));
                    if registry.take_ready(Some(awaited)) || gone {
                        self.awaiting_ready = None;
                    }
                } else {
                    registry.take_ready(None);
                }
                // The ordered start waits for a group restart too, whose
                // members start in order.
                if self.awaiting_ready.is_none() {
                    if self.group.is_none() {
                        self.start_queued(registry, now);
                    } else {
                        self.start_next_member(registry, now);
                    }
                }
                requests
            };
            self.flush_spawns();
            // The rest of a burst of inserts, a batch per lock: the attempts
            // prepared but not yet spawned are memory per child at the
            // burst's peak (72 bytes each in the two lists, which double as
            // they grow: about 100 bytes per child of a large burst).
            while !pending.as_slice().is_empty() {
                let shared = self.shared;
                self.launch_pending(&mut shared.registry(), &mut pending, now);
                self.flush_spawns();
            }
            self.handle_stop_requests(requests, now);
        }
        // A forced shutdown has cancelled the manager's token first, so the
        // loop's stop has begun, or begins at its next wait; the force
        // follows it. Background children are then stopped as usual.
        if matches!(self.phase, Phase::Stopping { forced: false, .. })
            && self.shared.forced.load(Ordering::Acquire)
        {
            self.force();
        }
        if matches!(self.phase, Phase::Stopping { .. }) && self.shared.settings.ordered_stop {
            self.stop_next_in_order(Instant::now());
        }
    }

    /// Queues the children inserted before the run for an ordered start
    /// (without one, they start on the first turn like any insert).
    pub(super) fn queue_initial(&mut self, initial: Vec<u32>) {
        let shared = self.shared;
        let mut registry = shared.registry();
        for slot in initial {
            if let Some(record) = registry.pending(slot) {
                let key = record.key();
                self.count_in(record);
                self.start_queue.push_back(key);
            }
        }
    }

    /// Prepares the next [`SPAWN_BATCH`] of the accepted children.
    fn launch_pending(
        &mut self,
        registry: &mut Registry,
        pending: &mut std::vec::IntoIter<u32>,
        now: Instant,
    ) {
        for slot in pending.by_ref().take(SPAWN_BATCH) {
            if let Some(record) = registry.pending(slot) {
                self.count_in(record);
                self.prepare(record, now);
            }
        }
    }

    /// The loop takes charge of a child: until its end is final, the run
    /// goes on.
    fn count_in(&mut self, record: &Record) {
        if record.core.policy.background() {
            self.background += 1;
        } else {
            self.foreground += 1;
        }
    }

    /// Ordered start: prepares the next queued child, or, while stopping,
    /// all that are left (they were accepted, so they run, and stop at once).
    pub(super) fn start_queued(&mut self, registry: &mut Registry, now: Instant) {
        let stopping = self.phase.is_stopping();
        while let Some(key) = self.start_queue.pop_front() {
            if self.start_queue.is_empty() && self.start_queue.capacity() > 1024 {
                // A large ordered start is over: its queue's room is given
                // back, not kept for the rest of the run.
                self.start_queue = std::collections::VecDeque::new();
            }
            // Still to spawn: it is queued once, and never twice.
            let Some(record) = registry
                .get_mut(key)
                .filter(|record| matches!(record.stage(), Stage::Pending))
            else {
                continue;
            };
            if !stopping {
                self.awaiting_ready = Some(key);
            }
            self.prepare(record, now);
            if !stopping {
                return;
            }
        }
    }

    /// A restart came due (under the registry lock): the next attempt
    /// starts, spawned at once, unless the child was stopped through its
    /// handle just then, which makes its end final (after the lock).
    pub(super) fn restart_due(&mut self, record: &mut Record, now: Instant) -> RestartDue {
        let in_group = self.backoff_is_group(&record.core);
        if record.core.is_stopped() {
            return RestartDue::Stopped;
        }
        self.prepare(record, now);
        // One child: spawned under the lock, which saves taking it again
        // to store the task's handle. Nothing else waits in `to_spawn` here.
        if let Some((runnable, prepared)) = self.to_spawn.pop() {
            let task = runnable.spawn(self.launch(prepared));
            if let Some(attempt) = record.attempt_mut() {
                attempt.task = Some(task);
            }
        }
        RestartDue::Started { in_group }
    }

    /// Prepares the record's next attempt; it is spawned by
    /// [`flush_spawns`](Run::flush_spawns) once the lock is released.
    fn prepare(&mut self, record: &mut Record, now: Instant) {
        let core = Arc::clone(&record.core);
        let key = core.key();
        let attempt = core.begin_attempt(self.scope.started);
        let order = self.next_order;
        self.next_order += 1;
        // Timers for this attempt are set after this: they carry its epoch.
        record.restage(|previous| {
            Stage::Running(Attempt::new(self.scope.started, now, order, previous))
        });
        if let Some(stale_after) = core.stale_after() {
            self.timers
                .set(later(now, stale_after), TimerKind::Liveness, record);
        }
        if self.phase.is_stopping() && !core.policy.background() {
            // A child spawned during the stop must stop too: at once, or
            // with ordered stop in its turn, when its grace period starts.
            if self.shared.settings.ordered_stop {
                self.stop_order.push((order, key));
            } else {
                core.stop();
                if let Some(grace) = core.grace() {
                    self.timers.set(later(now, grace), TimerKind::Abort, record);
                }
            }
        } else if core.was_asked_to_stop() {
            // Stopped through its handle before it started (ordered start):
            // its grace period starts now.
            self.arm_grace(record, now);
        }
        if self.awaiting_ready == Some(key) {
            if let Some(timeout) = self.shared.settings.ordered_start {
                self.timers
                    .set(later(now, timeout), TimerKind::StartTimeout, record);
            }
        }
        // Reloads before a restart are not news to the next attempt, which
        // starts from fresh configuration; the first attempt gets every one
        // requested since the insert.
        let seen_reloads = if attempt == 1 {
            0
        } else {
            core.forget_reloads()
        };
        // The rest (the event, the span, the context) is made after the
        // lock, which the inserting tasks wait for.
        let prepared = Prepared {
            core,
            attempt,
            seen_reloads,
        };
        self.to_spawn.push((Arc::clone(&record.runnable), prepared));
    }

    /// What an attempt prepared under the lock needs besides: its start
    /// event, its span and its context.
    fn launch(&self, prepared: Prepared) -> Launch {
        let Prepared {
            core,
            attempt,
            seen_reloads,
        } = prepared;
        self.scope
            .events
            .publish(&self.scope.path, Some(&core.name), core.id, || {
                EventKind::Started { attempt }
            });
        Launch {
            #[cfg(feature = "tracing")]
            span: crate::manager::events::child_span(
                &self.scope.span,
                &self.scope.path,
                &core.name,
                core.id,
                attempt,
            ),
            slow_polls: SlowPolls::of(&core, &self.scope, self.shared),
            ctx: Context::new(core, attempt, seen_reloads, Arc::clone(&self.scope)),
        }
    }

    /// Spawns the attempts prepared under the lock, then records their
    /// tasks' handles.
    pub(super) fn flush_spawns(&mut self) {
        if self.to_spawn.is_empty() {
            return;
        }
        // Both lists are kept between turns, so that a turn allocates nothing.
        let mut spawned = std::mem::take(&mut self.spawned);
        let mut to_spawn = std::mem::take(&mut self.to_spawn);
        spawned.extend(to_spawn.drain(..).map(
            |(runnable, prepared): (Arc<dyn DynRunnable>, Prepared)| {
                let key = prepared.core.key();
                (key, runnable.spawn(self.launch(prepared)))
            },
        ));
        self.to_spawn = to_spawn;
        if self.to_spawn.capacity() > 1024 {
            // A large batch (the queued children of an ordered start that a
            // stop launches at once, or a large group) is over: give its
            // memory back. Inserts come in batches of `SPAWN_BATCH`.
            self.to_spawn = Vec::new();
        }
        let forced = matches!(self.phase, Phase::Stopping { forced: true, .. });
        let shared = self.shared;
        let mut registry = shared.registry();
        for (key, task) in spawned.drain(..) {
            // Gone, or no longer running: the manager was abandoned (by its
            // parent, from another thread) between the spawn and the lock,
            // and aborted every task it knew of. This one it did not: abort
            // it here, or dropping its handle would leave it running.
            let Some(record) = registry.get_mut(key) else {
                task.abort();
                continue;
            };
            let Some(attempt) = record.attempt_mut() else {
                task.abort();
                continue;
            };
            attempt.task = Some(task);
            if forced && !record.core.policy.background() {
                self.abort(record, AbortCause::Forced);
            }
        }
        drop(registry);
        if spawned.capacity() <= 1024 {
            self.spawned = spawned;
        }
    }
}
