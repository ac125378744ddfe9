//! The supervision loop: one future per manager run that spawns accepted
//! children, reaps them as their tasks report their ends, restarts them as
//! their policy says, and carries out the graceful-then-forced stop.
//!
//! The loop reads as one call per event (see [`supervise`]); each concern
//! has its file:
//!
//! | file | what it does |
//! | --- | --- |
//! | `task.rs` | spawns one attempt of a process; how its task reports its end |
//! | `start.rs` | the loop's turn: inserts, ordered start, restarts due, stop requests |
//! | `reap.rs` | a task ended: group, restart, or final end |
//! | `group.rs` | one-for-all and rest-for-one restarts |
//! | `stop.rs` | the manager's stop, ordered stop, background children, force |
//! | `timers.rs` | the timer heap and what a due timer does |
//! | `end.rs` | the one transition to a child's final end |
//!
//! A run's phase (`registry::Phase`) changes in [`Run::enter`] (and where the
//! run starts and where an unfinished manager is abandoned):
//!
//! ```text
//! Idle ──run──▶ Running ──shutdown requested──▶ Stopping ──┐
//!                  │  │                            ▲        │ no foreground child left
//!                  │  └─ requested, with a drain ─▶ Draining ─┤ (drain over, forced, failure)
//!                  └──────── no foreground child left ──────┤
//!                                                           ▼
//!                          Finished ◀── none left ── StoppingBackground
//! ```
//!
//! (`Stopping` and `StoppingBackground` are skipped when there is nothing to
//! stop. `Draining` is `Running` that reports unready and ends at a
//! deadline, which cancels the manager's token.) The loop holds the registry lock only between `.await`s, and runs
//! no user code under it.

mod end;
mod group;
mod reap;
mod start;
mod stop;
mod task;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use task::DynRunnable;

use super::exit::Exit;
use super::registry::{Admission, Phase, Record, Registry, Reserved};
use super::shared::ManagerShared;
use crate::control::{
    AttemptEnd, ChildCore, ChildKey, Context, ControlMessage, EventHubs, Lineage, Outcome,
    PollWatch, Scope, ShutdownReason, Watched,
};
use crate::error::{ChildFailures, RunError};
use crate::manager::events;
use crate::policy::{Random, RestartWindow};
use group::Group;
use stop::AbortCause;
use timers::Timers;

/// Runs the manager until every child has ended. `parent` is the manager's
/// own context when it runs as a child of another manager.
pub(crate) async fn supervise(
    shared: &Arc<ManagerShared>,
    mut parent: Option<Context>,
) -> Result<Exit, RunError> {
    let Some(mut run) = Run::new(shared, parent.as_ref()) else {
        return Err(RunError::AlreadyStarted);
    };
    // One timer, moved as the next deadline changes, instead of a new one
    // on every turn.
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let token = run.token.clone();
    let requested = run.requested.clone();
    // The futures the loop waits on live across its turns: each one made
    // anew registers with its `Notify` (a lock) and leaves it on drop, which
    // on every turn cost more than a reap. A completed one is polled again
    // only where it stays complete (a cancelled token), or is made anew.
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);
    let drain_requested = requested.cancelled();
    tokio::pin!(drain_requested);
    let woken = shared.wake.notified();
    tokio::pin!(woken);
    let mut armed: Option<Instant> = None;
    loop {
        // Every attempt that has ended since the last turn, at once: its
        // task woke the loop (`wake`) if it was the first to end since.
        let reaped = run.reap_ended();
        if reaped > 0 && run.foreground + run.background > 1 {
            // More ends are likely to follow (a stop, a burst of short
            // children): let the tasks that are ready run first, so that
            // the next turn reaps many. The woken loop would otherwise run
            // straight after each ending task (tokio runs a task woken by
            // the task before it next) and take a turn per child. Deferred
            // to the runtime's next check of its drivers, or until it has
            // nothing else to run.
            tokio::task::yield_now().await;
        }
        run.turn();
        run.tell_parent(parent.as_ref());
        if run.advance() {
            break;
        }
        let next_deadline = run.next_deadline();
        if let Some(deadline) = next_deadline {
            let now = Instant::now();
            if deadline <= now {
                // Due already (a restart without backoff): tokio's timer
                // would round the wait up to its next millisecond tick.
                run.timers_due(now, parent.as_ref());
                continue;
            }
        }
        if next_deadline != armed {
            if let Some(deadline) = next_deadline {
                sleep.as_mut().reset(deadline);
            }
            armed = next_deadline;
        }
        let stopping = run.phase.is_stopping();
        tokio::select! {
            biased;
            // While it runs, the drain request stands for both: the run's
            // token is its parent, so a stop cancels it too. One wait
            // polled instead of two (each poll of a token takes its lock).
            () = &mut drain_requested, if run.phase == Phase::Running => {
                if token.is_cancelled() {
                    run.begin_stop(parent.as_ref());
                } else {
                    run.begin_drain();
                }
            }
            () = &mut cancelled, if !stopping && run.phase != Phase::Running => run.begin_stop(parent.as_ref()),
            // Not while draining either: the parent's shutdown has been
            // taken, and `recv` would return `None` at once from then on.
            message = recv_parent(&mut parent), if run.phase == Phase::Running => run.on_parent_message(message, parent.as_ref()),
            // Before the timer: a wake-up is far more frequent, and when it
            // is due the timer need not be polled.
            () = &mut woken => woken.set(shared.wake.notified()),
            () = &mut sleep, if armed.is_some() => {
                armed = None;
                run.timers_due(Instant::now(), parent.as_ref());
            }
        }
    }
    run.finish()
}

async fn recv_parent(parent: &mut Option<Context>) -> Option<ControlMessage> {
    match parent {
        Some(ctx) => ctx.recv().await,
        None => std::future::pending().await,
    }
}

/// One run of a manager; dropping it before it finished (the run's future
/// was dropped) aborts every child.
struct Run<'a> {
    shared: &'a Arc<ManagerShared>,
    /// What every child's context shares; its path is the manager's.
    scope: Arc<Scope>,
    /// The manager's id in its parent, for its own events.
    own_id: u64,
    /// Whether it runs as another manager's child, which may run it again.
    nested: bool,
    /// This run's token, cancelled when it stops (the registry's).
    token: CancellationToken,
    /// This run's shutdown request, a child of `token` cancelled alone at
    /// the start of a drain (the registry's).
    requested: CancellationToken,
    /// A copy of the registry's phase, changed with it in [`Run::enter`].
    phase: Phase,
    /// The ends reported since the last turn, being reaped; kept between
    /// turns so that a turn allocates nothing.
    ended: Vec<(ChildKey, AttemptEnd)>,
    /// Attempts prepared under the lock, spawned just after it.
    to_spawn: Vec<(Arc<dyn DynRunnable>, start::Prepared)>,
    /// Their tasks' handles, on the way into the registry.
    spawned: Vec<(ChildKey, JoinHandle<()>)>,
    timers: Timers,
    /// `timers_due`'s list of restarts to finish after the lock.
    restarts_due: Vec<(ChildKey, start::RestartDue)>,
    /// Children whose running attempt this loop aborted, and why.
    aborting: HashMap<ChildKey, AbortCause>,
    failures: Option<ChildFailures>,
    /// Children the loop has taken from the pending list whose end is not
    /// final yet, other than background ones.
    foreground: usize,
    /// The same, background children.
    background: usize,
    /// Children inserted before the run, still to start (ordered start).
    start_queue: VecDeque<ChildKey>,
    /// The child of the ordered start whose readiness the loop waits for.
    awaiting_ready: Option<ChildKey>,
    group: Option<Group>,
    /// Ordered stop: children still to ask, by start order (asked from the
    /// back).
    stop_order: Vec<(u64, ChildKey)>,
    /// Ordered stop: the child asked last, until it has ended.
    stopping_in_order: Option<ChildKey>,
    /// The start order of the next attempt.
    next_order: u64,
    /// Restarts among all children, for the manager's restart limit.
    restarts: RestartWindow,
    /// Whether the parent was last told that this manager is ready.
    told_ready: bool,
    /// A reload from the parent was passed on to the children; the parent
    /// is told it was taken once they have all taken it.
    reload_owed: bool,
    /// Whether a drain holds the manager's readiness back, until the run
    /// ends.
    drained: bool,
    random: Random,
}

impl<'a> Run<'a> {
    /// Starts the run; `None` if the manager runs now, or has run as a
    /// root. A nested manager whose run has finished runs again (its parent
    /// restarts it) with the children it was built with.
    fn new(shared: &'a Arc<ManagerShared>, parent: Option<&Context>) -> Option<Self> {
        let path: Arc<str> = match parent {
            Some(ctx) => ctx.path().into(),
            None => Arc::from(&*shared.settings.name),
        };
        // The children inserted before the run are taken under the lock
        // that starts it: one inserted a moment later is not part of an
        // ordered start.
        let mut ended_run = Vec::new();
        let mut replaced = Vec::new();
        let started = Instant::now();
        let (initial, token, requested) = {
            let mut registry = shared.registry();
            let token = match (registry.phase(), parent) {
                (Phase::Idle, _) => {
                    registry.set_phase(Phase::Running);
                    // Under the lock: no stage changes while the gauge is
                    // set. Once: a run again keeps counting.
                    #[cfg(feature = "metrics")]
                    shared
                        .metrics
                        .register(&path, shared.settings.metrics_per_child);
                    if parent.is_some() {
                        registry.keep_spec();
                    }
                    registry.token().clone()
                }
                (Phase::Finished, Some(_)) => {
                    rerun(shared, &mut registry, &mut ended_run, &mut replaced)
                }
                _ => return None,
            };
            let initial = if shared.settings.ordered_start.is_some() {
                registry.take_pending()
            } else {
                Vec::new()
            };
            registry.set_started(started);
            (initial, token, registry.requested().clone())
        };
        // Dropping them may drop a user's process, or messages nobody read:
        // not under the lock.
        drop((ended_run, replaced));
        if let Some(ctx) = parent {
            // A stop through the manager's handle that came before this
            // (before its first run) cancelled the token instead of going
            // through the parent; it is for good all the same, so the parent
            // hears of it now. The look and the set share the lock that
            // such a stop holds, so every stop takes one way or the other.
            let stopped_before = {
                let mut in_parent = shared
                    .in_parent
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                *in_parent = Some(ctx.core());
                token.is_cancelled()
            };
            if stopped_before {
                // Fails only once the record has ended, and it runs.
                let _ = ctx.core().request_shutdown();
            }
        }
        // A manager runs once (checked above), so this is the first set.
        let _ = shared.path.set(Arc::clone(&path));
        let mut run = Run {
            shared,
            scope: Arc::new(Scope {
                path,
                reason: Arc::clone(&shared.reason),
                events: EventHubs::with(parent.map(Context::events), &shared.events),
                started,
                // The span the run is polled in: a nested manager's own
                // process span, or a root manager's (see `IntoFuture`).
                #[cfg(feature = "tracing")]
                span: tracing::Span::current(),
            }),
            own_id: parent.map_or(0, Context::id),
            nested: parent.is_some(),
            token,
            requested,
            phase: Phase::Running,
            ended: Vec::new(),
            to_spawn: Vec::new(),
            spawned: Vec::new(),
            timers: Timers::new(),
            restarts_due: Vec::new(),
            aborting: HashMap::new(),
            failures: None,
            foreground: 0,
            background: 0,
            start_queue: VecDeque::new(),
            awaiting_ready: None,
            group: None,
            stop_order: Vec::new(),
            stopping_in_order: None,
            next_order: 0,
            restarts: RestartWindow::default(),
            told_ready: false,
            reload_owed: false,
            drained: false,
            random: Random::new(),
        };
        run.queue_initial(initial);
        Some(run)
    }

    /// Makes the loop's next turn look at the registry (inserts that waited
    /// for a group restart) instead of waiting for an event.
    fn work_for_next_turn(&self) {
        // Wakes the loop's wait on `wake`, or, if it is not registered just
        // then, stores a permit: either way the next wait ends at once.
        self.shared.work.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Moves the run to `phase`; the only place the phase changes, but for
    /// the start of the run (`Run::new`) and a manager that goes away
    /// without finishing it (`ManagerShared::abandon`).
    fn enter(&mut self, phase: Phase) {
        let shared = self.shared;
        let mut registry = shared.registry();
        self.enter_locked(&mut registry, phase);
    }

    fn enter_locked(&mut self, registry: &mut Registry, phase: Phase) {
        registry.set_phase(phase);
        self.phase = phase;
    }

    /// Moves the run on once the children it waits for are gone: to
    /// stopping the background children, or to its end. `true` when the run
    /// is finished.
    fn advance(&mut self) -> bool {
        if self.shared.settings.keep_running && !self.phase.is_stopping() {
            return false;
        }
        if self.foreground > 0 || !self.start_queue.is_empty() || self.group.is_some() {
            return false;
        }
        if self.background > 0 {
            if self.phase != Phase::StoppingBackground {
                self.stop_background();
            }
            return false;
        }
        // No insert may slip in between the look and the phase change.
        let shared = self.shared;
        let mut registry = shared.registry();
        if registry.has_pending() {
            return false;
        }
        self.enter_locked(&mut registry, Phase::Finished);
        true
    }

    /// A nested manager is ready in its parent while its own children are,
    /// and has taken a reload once they have.
    fn tell_parent(&mut self, parent: Option<&Context>) {
        let Some(ctx) = parent else {
            return;
        };
        if self.reload_owed && self.shared.reloading.load(Ordering::Acquire) == 0 {
            self.reload_owed = false;
            ctx.reload_taken();
        }
        let ready = self.shared.unready.load(Ordering::Acquire) == 0;
        if ready != self.told_ready {
            self.told_ready = ready;
            if ready {
                ctx.set_ready();
            } else {
                ctx.mark_unready();
            }
        }
    }

    fn on_parent_message(&mut self, message: Option<ControlMessage>, parent: Option<&Context>) {
        match message {
            Some(ControlMessage::Shutdown) => {
                let parents = parent
                    .and_then(Context::shutdown_reason)
                    .unwrap_or(ShutdownReason::Requested);
                self.shared
                    .reason
                    .set(ShutdownReason::Parent(Box::new(parents)));
                self.shared.begin_shutdown();
            }
            Some(ControlMessage::Reload) => {
                // Fails only once this manager has finished, and it runs.
                let _ = self.shared.broadcast_reload();
                self.reload_owed = true;
            }
            // A manager has no use for custom messages.
            Some(ControlMessage::Custom(_)) | None => {}
        }
    }

    /// What the run returns; its outcome reaches every handle.
    // The run's public result, returned once per run.
    #[allow(clippy::result_large_err)]
    fn finish(mut self) -> Result<Exit, RunError> {
        let reason = self.shared.reason.get();
        let result = match self.failures.take() {
            Some(mut failures) => {
                failures.set_shutdown_reason(reason);
                Err(RunError::ChildFailed(failures))
            }
            None => Ok(Exit::new(reason)),
        };
        if self.drained {
            // The drain's hold ends with the run: `ready()` waiters return,
            // as they do when every child has ended.
            self.shared.readiness_changed(true);
        }
        events::manager_finished(self.shared);
        if !self.nested {
            // A nested manager may run again; its events go on.
            self.shared.events.close();
        }
        self.shared.end.set(match &result {
            Ok(exit) if exit.shutdown_reason().is_some() => Outcome::Stopped,
            Ok(_) => Outcome::Completed,
            Err(error) => Outcome::Failed(Arc::new(error.clone())),
        });
        result
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if self.phase != Phase::Finished {
            // Aborts every child's running attempt.
            self.shared.abandon(true);
        }
    }
}

/// Starts a new run of a nested manager whose run has finished (under the
/// registry lock): the run's state is reset, the records the ended run kept
/// (auto-cleanup off) go into `ended_run`, to be dropped after the lock, and
/// the children it was built with are admitted again, each as the successor
/// of the one before, so that their handles follow. Returns the new run's
/// token.
fn rerun(
    shared: &Arc<ManagerShared>,
    registry: &mut Registry,
    ended_run: &mut Vec<Record>,
    replaced: &mut Vec<Arc<ChildCore>>,
) -> CancellationToken {
    let (token, mut spec) = registry.begin_rerun(ended_run);
    shared.reason.clear();
    shared.forced.store(false, Ordering::Release);
    shared.end.clear();
    let mut unready = 0;
    for child in &mut spec {
        let previous = &child.core;
        // Every name is free: the run ended every child.
        let Ok(Reserved { key, name, hash }) = registry.reserve(previous.name.clone(), true) else {
            continue;
        };
        let watched = Watched {
            stale_after: previous.stale_after(),
            slow_poll: previous.polls().map(PollWatch::threshold),
        };
        let core = shared.new_core(key, name, previous.child_policy(), watched);
        // Handles of this child from every earlier run follow it through
        // its lineage, which holds only the latest run's core.
        let lineage = child
            .lineage
            .get_or_insert_with(|| Arc::new(Lineage::new(Arc::clone(previous))));
        replaced.push(lineage.advance(Arc::clone(&core)));
        previous.join_lineage(lineage);
        if core.policy.reports_ready() {
            unready += 1;
        }
        let restart = child.restart.as_ref().map(|state| Box::new(state.fresh()));
        let runnable = Arc::clone(&child.runnable);
        registry.admit(Arc::clone(&core), hash, Admission { runnable, restart });
        replaced.push(std::mem::replace(&mut child.core, core));
    }
    registry.restore_spec(spec);
    shared.unready.store(unready, Ordering::Release);
    shared.work.store(true, Ordering::Release);
    token
}
