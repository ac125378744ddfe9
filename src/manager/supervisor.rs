//! The supervision loop: one future per manager run that spawns accepted
//! children onto a `JoinSet`, reaps them as they end, restarts them as their
//! policy says, and carries out the graceful-then-forced stop.
//!
//! Invariants:
//! - A child's task returns its slot and id along with its result (panics are
//!   caught inside the task), so reaping a child is O(1) and needs no map.
//!   Only aborted tasks come back without a result; they are found through
//!   the small `aborting` map, which holds nothing but the children this
//!   loop aborted.
//! - Timers (grace deadlines, restarts, start timeouts) live in one min-heap,
//!   plus one deadline for the whole manager once it stops. Stale entries
//!   (the child ended, its slot reused, its stage changed) are recognised by
//!   id and stage and skipped.
//! - A child's record stays until its end is final: while it waits for a
//!   restart (`Backoff`) or for siblings restarted with it (`Held`), its
//!   handle keeps working and `wait` keeps waiting.
//! - Background children, and every child when stops are ordered, hold
//!   tokens of their own, not children of the manager's; the loop cancels
//!   them itself.
//! - The loop holds the registry lock only between `.await`s, and runs no
//!   user code under it.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::Instant;

use super::events;
use super::exit::Exit;
use super::restart::Random;
use super::shared::{ManagerShared, Phase, Record, Registry, Stage};
use super::{Restart, RestartLimit, Strategy};
use crate::control::{
    ChildCore, Context, ControlMessage, EventHubs, EventKind, Outcome, Scope, ShutdownReason,
};
use crate::error::{ChildFailure, ChildFailures, FailureCause, RunError};
use crate::runnable::{BoxError, DynRunnable, Runnable};

/// What a child's task returns: its slot and id, and its result or the
/// payload of its panic.
pub(crate) type TaskOutput = (
    usize,
    u64,
    Result<Result<(), BoxError>, Box<dyn Any + Send>>,
);

/// Everything a child's task needs besides the process.
pub(crate) struct Launch {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    slot: usize,
    id: u64,
    ctx: Context,
}

/// Spawns one attempt of a child. Generic over the process so that its
/// future lives inline in the task, without a box of its own.
pub(crate) fn spawn_task<R: Runnable>(
    runnable: Arc<R>,
    tasks: &mut JoinSet<TaskOutput>,
    launch: Launch,
) -> AbortHandle {
    let Launch {
        #[cfg(feature = "tracing")]
        span,
        slot,
        id,
        ctx,
    } = launch;
    // One async block, not two nested ones: each layer would keep its own
    // copy of what it captures, and the task's size is memory per child.
    let task = async move {
        // `lazy(..).flatten()` creates the process's future on the first
        // poll, inside `catch_unwind`, and then holds it in the same place:
        // a `run` that panics before its first `.await`, or a panicking
        // subscriber of the start event, fails this child instead of losing
        // it, and the future is stored once, not twice.
        let result = AssertUnwindSafe(
            futures::future::lazy(|_| {
                events::child_started(ctx.parent_path(), ctx.name(), id);
                runnable.run(ctx)
            })
            .flatten(),
        )
        .catch_unwind()
        .await
        .map(|ended| ended.map_err(Into::into));
        (slot, id, result)
    };
    #[cfg(feature = "tracing")]
    let task = tracing::Instrument::instrument(task, span);
    tasks.spawn(task)
}

/// What a timer does when it fires; the order breaks ties between timers
/// due at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    /// Abort the child: its grace period is over.
    Abort,
    /// Abort the child: it was not ready within the start timeout.
    StartTimeout,
    /// Start the child's next attempt.
    Restart,
    /// Check that the child has sent a heartbeat recently enough.
    Liveness,
}

/// When, what, and for which child: slot, id and the record's epoch, so that
/// a timer set in an earlier stage of the child, or for a child whose slot
/// was reused, is skipped.
type Timer = Reverse<(Instant, TimerKind, usize, u64, u32)>;

fn timer(at: Instant, kind: TimerKind, record: &Record) -> Timer {
    Reverse((at, kind, record.core.slot(), record.core.id, record.epoch))
}

/// `now + duration`, or far in the future when that does not fit in an
/// `Instant` (a grace period of `Duration::MAX` means "never abort").
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(60 * 60 * 24 * 365 * 30)))
        .unwrap_or(now)
}

/// Why the loop aborted a task.
#[derive(Debug, Clone, Copy)]
enum AbortCause {
    Grace(Duration),
    StartTimeout(Duration),
    Wedged(Duration),
}

/// Runs the manager until every child has ended. `parent` is the manager's
/// own context when it runs as a child of another manager.
pub(crate) async fn supervise(
    shared: &Arc<ManagerShared>,
    mut parent: Option<Context>,
) -> Result<Exit, RunError> {
    let initial = {
        let mut registry = shared.registry();
        if registry.phase != Phase::Idle {
            return Err(RunError::AlreadyStarted);
        }
        registry.phase = Phase::Running;
        if shared.settings.ordered_start.is_some() {
            std::mem::take(&mut registry.pending)
        } else {
            Vec::new()
        }
    };
    let path: Arc<str> = match &parent {
        Some(ctx) => ctx.path().into(),
        None => Arc::from(&*shared.settings.name),
    };
    // A manager runs once (checked above), so this is the first set.
    let _ = shared.path.set(Arc::clone(&path));
    let mut run = Run {
        shared,
        scope: Arc::new(Scope {
            path: Arc::clone(&path),
            reason: Arc::clone(&shared.reason),
            events: EventHubs::with(parent.as_ref().map(Context::events), &shared.events),
            started: Instant::now(),
        }),
        own_id: parent.as_ref().map_or(0, Context::id),
        path,
        tasks: JoinSet::new(),
        stopping: false,
        stop_deadline: None,
        timers: BinaryHeap::new(),
        aborting: HashMap::new(),
        failures: None,
        foreground: 0,
        scheduled: 0,
        start_queue: VecDeque::new(),
        awaiting_ready: None,
        group: None,
        stop_order: Vec::new(),
        background_stopped: false,
        forced: false,
        random: Random::new(),
        finished: false,
    };
    run.queue_initial(initial);
    // One timer, moved as the next deadline changes, instead of a new one
    // on every turn.
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;

    let mut said_ready = false;
    loop {
        run.turn();
        if !said_ready && shared.unready.load(Ordering::Acquire) == 0 {
            // A nested manager is ready once its children are.
            said_ready = true;
            if let Some(ctx) = &parent {
                ctx.mark_ready();
            }
        }
        if run.is_idle() {
            if run.try_finish() {
                break;
            }
        } else if run.foreground == 0 && !run.background_stopped {
            run.stop_background();
        }
        let next_deadline = run.next_deadline();
        if next_deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            // Due already (a restart without backoff): tokio's timer would
            // round the wait up to its next millisecond tick.
            run.timers_due();
            continue;
        }
        if next_deadline != armed {
            if let Some(deadline) = next_deadline {
                sleep.as_mut().reset(deadline);
            }
            armed = next_deadline;
        }
        tokio::select! {
            biased;
            () = shared.token.cancelled(), if !run.stopping => {
                run.begin_stop(parent.as_ref());
            }
            message = recv_parent(&mut parent), if !run.stopping => {
                match message {
                    Some(ControlMessage::Shutdown) => {
                        let parents = parent
                            .as_ref()
                            .and_then(Context::shutdown_reason)
                            .unwrap_or(ShutdownReason::Requested);
                        shared.reason.set(ShutdownReason::Parent(Box::new(parents)));
                        shared.token.cancel();
                    }
                    Some(ControlMessage::Reload) => {
                        // Only fails once this manager has stopped, and it
                        // is running.
                        let _ = shared.broadcast_reload();
                    }
                    // A manager has no use for custom messages.
                    Some(ControlMessage::Custom(_)) | None => {}
                }
            }
            Some(joined) = run.tasks.join_next() => run.reap(joined),
            () = &mut sleep, if armed.is_some() => {
                armed = None;
                run.timers_due();
            }
            () = shared.wake.notified() => {}
        }
    }

    let reason = shared.reason.get();
    let result = match run.failures.take() {
        Some(mut failures) => {
            failures.set_shutdown_reason(reason);
            Err(RunError::ChildFailed(failures))
        }
        None => Ok(Exit::new(reason)),
    };
    run.finished = true;
    shared.events.close();
    shared.end.set(match &result {
        Ok(exit) if exit.shutdown_reason().is_some() => Outcome::Stopped,
        Ok(_) => Outcome::Completed,
        Err(error) => Outcome::Failed(Arc::new(error.clone())),
    });
    result
}

async fn recv_parent(parent: &mut Option<Context>) -> Option<ControlMessage> {
    match parent {
        Some(ctx) => ctx.recv().await,
        None => std::future::pending().await,
    }
}

/// Children stopped to be restarted together with the one that triggered it
/// (one-for-all, rest-for-one).
struct Group {
    /// Members whose attempt still runs.
    running: usize,
    /// Every member, the trigger included.
    members: Vec<(usize, u64)>,
    /// The trigger's backoff, which the whole group waits.
    delay: Duration,
}

/// One run of a manager; dropping it before it finished (the run's future
/// was dropped) aborts every child.
struct Run<'a> {
    shared: &'a Arc<ManagerShared>,
    path: Arc<str>,
    /// What every child's context shares.
    scope: Arc<Scope>,
    /// The manager's id in its parent, for its own events.
    own_id: u64,
    tasks: JoinSet<TaskOutput>,
    stopping: bool,
    /// When children with the manager's grace period are aborted; set when
    /// the manager starts to stop, cleared once it has passed.
    stop_deadline: Option<Instant>,
    /// Entries stay until they are due even if their child ends earlier; the
    /// heap is bounded by the children stopped or restarted within one grace
    /// period or backoff.
    timers: BinaryHeap<Timer>,
    aborting: HashMap<tokio::task::Id, (usize, AbortCause)>,
    failures: Option<ChildFailures>,
    /// Children that are not background children and whose end is not final
    /// yet, once the loop has taken them from the pending list.
    foreground: usize,
    /// Children waiting in `Backoff` for their restart.
    scheduled: usize,
    /// Children inserted before the run, still to start (ordered start).
    start_queue: VecDeque<usize>,
    /// The child of the ordered start whose readiness the loop waits for.
    awaiting_ready: Option<(usize, u64)>,
    group: Option<Group>,
    /// Ordered stop: children still to ask, lowest id first (asked from the
    /// back).
    stop_order: Vec<(usize, u64)>,
    background_stopped: bool,
    forced: bool,
    random: Random,
    finished: bool,
}

impl Run<'_> {
    fn queue_initial(&mut self, initial: Vec<usize>) {
        let registry = self.shared.registry();
        for slot in initial {
            if let Some(record) = registry.records.get(slot) {
                if !record.core.policy.background {
                    self.foreground += 1;
                }
                self.start_queue.push_back(slot);
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.tasks.is_empty()
            && self.scheduled == 0
            && self.start_queue.is_empty()
            && self.group.is_none()
    }

    /// Everything the loop does between waits: spawn accepted children,
    /// start grace periods, follow the ordered start and stop, force.
    fn turn(&mut self) {
        let work = self.shared.work.swap(false, Ordering::AcqRel);
        let starting = self.awaiting_ready.is_some() || !self.start_queue.is_empty();
        if work || starting {
            let now = Instant::now();
            let mut guard = self.shared.registry();
            let registry = &mut *guard;
            // Spawned after the lock is released, so that inserting tasks
            // do not wait while the loop spawns a batch.
            let mut batch = Vec::with_capacity(registry.pending.len());
            for slot in registry.pending.drain(..) {
                let Some(record) = registry.records.get_mut(slot) else {
                    continue;
                };
                if !record.core.policy.background {
                    self.foreground += 1;
                }
                let (runnable, launch) = self.prepare(record, now);
                batch.push((slot, runnable, launch));
            }
            let mut stopped = Vec::new();
            for (slot, id) in registry.stop_requests.drain(..) {
                let Some(record) = registry.records.get_mut(slot) else {
                    continue;
                };
                if record.core.id != id {
                    continue;
                }
                match record.stage {
                    Stage::Running => {
                        self.arm_grace(record, now);
                    }
                    // Stopped for good while waiting for its restart: it
                    // ends now, with the outcome it last had.
                    Stage::Backoff => {
                        self.scheduled -= 1;
                        let outcome = record.take_last_outcome();
                        stopped.push((slot, Arc::clone(&record.core), outcome));
                    }
                    // `spawn` starts the grace period of a child not yet
                    // started; `restart_group` ends a held one.
                    Stage::Pending | Stage::Held | Stage::Ended => {}
                }
            }
            if let Some(awaited) = self.awaiting_ready {
                // A child restarting before it was ready is still awaited.
                let ended = registry.records.get(awaited.0).is_none_or(|record| {
                    record.core.id != awaited.1 || record.stage == Stage::Ended
                });
                if ended || registry.ready.contains(&awaited) {
                    self.awaiting_ready = None;
                }
            }
            registry.ready.clear();
            if self.awaiting_ready.is_none() {
                self.start_next(registry, now);
            }
            let mut removed = Vec::new();
            for (slot, _, _) in &stopped {
                removed.extend(self.end_record(registry, *slot));
            }
            drop(guard);
            drop(removed);
            for (_, core, outcome) in stopped {
                self.announce_end(core, outcome);
            }
            if !batch.is_empty() {
                let spawned: Vec<_> = batch
                    .into_iter()
                    .map(|(slot, runnable, launch)| (slot, runnable.spawn(&mut self.tasks, launch)))
                    .collect();
                let mut registry = self.shared.registry();
                for (slot, abort) in spawned {
                    if let Some(record) = registry.records.get_mut(slot) {
                        record.abort = Some(abort);
                    }
                }
            }
        }
        if !self.forced && self.shared.forced.load(Ordering::Acquire) {
            self.force();
        }
        if self.stopping && self.shared.settings.ordered_stop {
            self.stop_next_in_order(Instant::now());
        }
    }

    /// Ordered start: spawns the next initial child, or, while stopping,
    /// all that are left (they were accepted, so they run, and stop at once).
    fn start_next(&mut self, registry: &mut super::shared::Registry, now: Instant) {
        while let Some(slot) = self.start_queue.pop_front() {
            let Some(record) = registry.records.get_mut(slot) else {
                continue;
            };
            if !self.stopping {
                self.awaiting_ready = Some((slot, record.core.id));
            }
            self.spawn(record, now);
            if !self.stopping {
                return;
            }
        }
    }

    /// Spawns the record's next attempt.
    fn spawn(&mut self, record: &mut Record, now: Instant) {
        let (runnable, launch) = self.prepare(record, now);
        record.abort = Some(runnable.spawn(&mut self.tasks, launch));
    }

    /// Everything about starting the record's next attempt but the spawn
    /// itself, which may then happen after the registry lock is released.
    fn prepare(&mut self, record: &mut Record, now: Instant) -> (Arc<dyn DynRunnable>, Launch) {
        let core = Arc::clone(&record.core);
        let attempt = core.begin_attempt();
        let token = if core.policy.restart == Restart::Never {
            record.attempt_token = None;
            core.token.clone()
        } else {
            let token = core.token.child_token();
            record.attempt_token = Some(token.clone());
            token
        };
        if let Some(restart) = &mut record.restart {
            restart.restart_at = None;
        }
        record.started_at = Some(now);
        // Timers for this attempt are set after this: they carry its epoch.
        record.set_stage(Stage::Running);
        if let Some(stale_after) = core.policy.stale_after {
            // Each attempt starts alive.
            core.beat(self.scope.started);
            self.timers
                .push(timer(later(now, stale_after), TimerKind::Liveness, record));
        }
        if self.stopping && !core.policy.background {
            // Independent tokens (ordered stop) are not cancelled by the
            // manager's: a child spawned during the stop must stop too, and
            // being the newest it is asked first. Background children wait
            // for their turn.
            if self.shared.settings.ordered_stop {
                self.stop_order.push((core.slot(), core.id));
            } else {
                token.cancel();
            }
            if let Some(grace) = core.policy.grace {
                self.timers
                    .push(timer(later(now, grace), TimerKind::Abort, record));
            }
        } else if core.was_asked_to_stop() {
            // Stopped through its handle before it started (ordered start):
            // its grace period starts now.
            self.arm_grace(record, now);
        }
        if self.awaiting_ready == Some((core.slot(), core.id)) {
            if let Some(timeout) = self.shared.settings.ordered_start {
                self.timers
                    .push(timer(later(now, timeout), TimerKind::StartTimeout, record));
            }
        }
        // Reloads before a restart are not news to the next attempt, which
        // starts from fresh configuration; the first attempt gets every one
        // requested since the insert.
        let seen_reloads = if attempt == 1 { 0 } else { core.reloads() };
        self.scope
            .events
            .publish(&self.path, Some(&core.name), core.id, || {
                EventKind::Started { attempt }
            });
        let launch = Launch {
            #[cfg(feature = "tracing")]
            span: events::child_span(&self.path, &core.name, core.id, attempt),
            slot: core.slot(),
            id: core.id,
            ctx: Context::new(core, token, attempt, seen_reloads, Arc::clone(&self.scope)),
        };
        (Arc::clone(&record.runnable), launch)
    }

    /// Ends the run if no accepted child is waiting to be spawned; from then
    /// on inserts are refused.
    fn try_finish(&mut self) -> bool {
        let mut registry = self.shared.registry();
        if !registry.pending.is_empty() {
            return false;
        }
        registry.phase = Phase::Stopped;
        // Children whose tasks are gone without the loop seeing their end
        // (the runtime shutting down) must not leave their handles waiting.
        let lost: Vec<_> = registry
            .records
            .iter()
            .filter(|record| !record.core.is_finished())
            .map(|record| Arc::clone(&record.core))
            .collect();
        drop(registry);
        // `finish` drops unread messages, which runs user code: not under
        // the lock.
        for core in lost {
            core.finish(Outcome::Aborted);
        }
        true
    }

    /// Asks the background children to stop, once no other child is left;
    /// from then on the manager is stopping.
    fn stop_background(&mut self) {
        let now = Instant::now();
        let mut registry = self.shared.registry();
        if !registry.pending.is_empty() {
            // An insert came in since the loop's turn began; spawn it first.
            return;
        }
        self.background_stopped = true;
        registry.phase = Phase::Stopping;
        let mut waiting = Vec::new();
        for (slot, record) in registry.records.iter_mut() {
            if record.core.policy.background && record.stage == Stage::Backoff {
                // Its restart will not come.
                self.scheduled -= 1;
                let outcome = record.take_last_outcome();
                waiting.push((slot, Arc::clone(&record.core), outcome));
            }
            if record.core.policy.background && record.stage == Stage::Running {
                record.core.token.cancel();
                self.arm_grace(record, now);
            }
        }
        let removed: Vec<_> = waiting
            .iter()
            .filter_map(|(slot, _, _)| self.end_record(&mut registry, *slot))
            .collect();
        drop(registry);
        drop(removed);
        for (_, core, outcome) in waiting {
            self.announce_end(core, outcome);
        }
    }

    /// Aborts every child but the background ones at once.
    fn force(&mut self) {
        self.forced = true;
        let mut registry = self.shared.registry();
        for (slot, record) in registry.records.iter_mut() {
            if !record.core.policy.background {
                abort_child(
                    &mut self.aborting,
                    &self.scope,
                    slot,
                    record,
                    AbortCause::Grace(Duration::ZERO),
                );
            }
        }
    }

    fn begin_stop(&mut self, parent: Option<&Context>) {
        let now = Instant::now();
        self.stopping = true;
        self.awaiting_ready = None;
        self.stop_deadline = Some(later(now, self.shared.settings.grace));
        self.shared.token.cancel();
        if let Some(ctx) = parent {
            // Tell the parent that this manager was asked to stop, so that
            // its outcome there reads "stopped".
            ctx.token().cancel();
        }
        let reason = self.shared.reason.get();
        events::manager_stopping(&self.path, reason.as_ref());
        self.scope
            .events
            .publish(&self.path, None, self.own_id, || {
                EventKind::ShutdownRequested(reason.unwrap_or(ShutdownReason::Requested))
            });
        let mut finals = Vec::new();
        {
            let mut registry = self.shared.registry();
            registry.phase = Phase::Stopping;
            for (slot, record) in registry.records.iter_mut() {
                match record.stage {
                    // Shutdown wins over restarts: a child waiting for one
                    // is never started again.
                    Stage::Backoff | Stage::Held => {
                        let outcome = record.take_last_outcome();
                        record.set_stage(Stage::Ended);
                        finals.push((slot, Arc::clone(&record.core), outcome));
                    }
                    Stage::Running if self.shared.settings.ordered_stop => {
                        if !record.core.policy.background {
                            self.stop_order.push((slot, record.core.id));
                        }
                    }
                    Stage::Running => {
                        if let Some(grace) = record.core.policy.grace {
                            self.timers
                                .push(timer(later(now, grace), TimerKind::Abort, record));
                        }
                    }
                    Stage::Pending | Stage::Ended => {}
                }
            }
            self.scheduled = 0;
            self.group = None;
            self.start_next(&mut registry, now);
        }
        // Lowest id last, so the child started last is asked first.
        self.stop_order.sort_unstable_by_key(|&(_, id)| id);
        for (slot, core, outcome) in finals {
            self.finish(slot, core, outcome);
        }
        if self.shared.settings.ordered_stop {
            self.stop_next_in_order(now);
        }
    }

    /// Ordered stop: asks the next child once the one before has ended.
    fn stop_next_in_order(&mut self, now: Instant) {
        let mut registry = self.shared.registry();
        while let Some(&(slot, id)) = self.stop_order.last() {
            let Some(record) = registry.records.get_mut(slot) else {
                self.stop_order.pop();
                continue;
            };
            if record.core.id != id || record.stage != Stage::Running {
                self.stop_order.pop();
                continue;
            }
            if !record.core.token.is_cancelled() {
                record.core.token.cancel();
                let grace = self.grace_of(record);
                let deadline = self
                    .stop_deadline
                    .map_or(later(now, grace), |overall| overall.min(later(now, grace)));
                self.timers.push(timer(deadline, TimerKind::Abort, record));
            }
            return;
        }
    }

    /// The child's grace period: its own, or the manager's.
    fn grace_of(&self, record: &Record) -> Duration {
        record
            .core
            .policy
            .grace
            .unwrap_or(self.shared.settings.grace)
    }

    /// Starts the grace period of the record's running attempt: when it
    /// ends, the attempt is aborted.
    fn arm_grace(&mut self, record: &Record, now: Instant) {
        let grace = self.grace_of(record);
        self.timers
            .push(timer(later(now, grace), TimerKind::Abort, record));
    }

    fn next_deadline(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((at, ..))| *at);
        match (self.stop_deadline, heap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn timers_due(&mut self) {
        let now = Instant::now();
        let mut restarts = Vec::new();
        let mut cancelled = Vec::new();
        let mut removed = Vec::new();
        {
            let mut registry = self.shared.registry();
            if self.stop_deadline.is_some_and(|at| at <= now) {
                self.stop_deadline = None;
                let ordered = self.shared.settings.ordered_stop;
                for (slot, record) in registry.records.iter_mut() {
                    // With ordered stop the manager's grace period bounds the
                    // whole sequence; otherwise children with a grace period
                    // of their own have a timer of their own.
                    if !record.core.policy.background
                        && (ordered || record.core.policy.grace.is_none())
                    {
                        abort_child(
                            &mut self.aborting,
                            &self.scope,
                            slot,
                            record,
                            AbortCause::Grace(self.shared.settings.grace),
                        );
                    }
                }
            }
            while let Some(&Reverse((at, kind, slot, id, epoch))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                let Some(record) = registry.records.get_mut(slot) else {
                    continue;
                };
                if record.core.id != id || record.epoch != epoch {
                    continue;
                }
                match kind {
                    TimerKind::Abort if record.stage == Stage::Running => {
                        let grace = self.grace_of(record);
                        abort_child(
                            &mut self.aborting,
                            &self.scope,
                            slot,
                            record,
                            AbortCause::Grace(grace),
                        );
                    }
                    TimerKind::StartTimeout
                        if record.stage == Stage::Running
                            && !self.stopping
                            && self.awaiting_ready == Some((slot, id))
                            && !record.core.is_ready() =>
                    {
                        self.awaiting_ready = None;
                        let timeout = self.shared.settings.ordered_start.unwrap_or_default();
                        abort_child(
                            &mut self.aborting,
                            &self.scope,
                            slot,
                            record,
                            AbortCause::StartTimeout(timeout),
                        );
                    }
                    // A child asked to stop has its grace period instead.
                    TimerKind::Liveness
                        if record.stage == Stage::Running
                            && !self.stopping
                            && !record.attempt_token().is_cancelled() =>
                    {
                        let stale_after = record.core.policy.stale_after.unwrap_or_default();
                        let since = record.core.since_beat(self.scope.started);
                        if since >= stale_after {
                            abort_child(
                                &mut self.aborting,
                                &self.scope,
                                slot,
                                record,
                                AbortCause::Wedged(stale_after),
                            );
                        } else {
                            // Due again when the last beat goes stale.
                            self.timers.push(timer(
                                later(now, stale_after - since),
                                TimerKind::Liveness,
                                record,
                            ));
                        }
                    }
                    TimerKind::Restart if record.stage == Stage::Backoff && !self.stopping => {
                        self.scheduled -= 1;
                        // Out of `Backoff` at once, so that no second timer
                        // can count it again.
                        record.set_stage(Stage::Pending);
                        restarts.push(slot);
                    }
                    _ => {}
                }
            }
            for slot in restarts {
                let Some(record) = registry.records.get_mut(slot) else {
                    continue;
                };
                if record.core.token.is_cancelled() {
                    // Stopped through its handle just as its restart came
                    // due: stopped for good.
                    let outcome = record.take_last_outcome();
                    cancelled.push((slot, Arc::clone(&record.core), outcome));
                } else {
                    self.spawn(record, now);
                }
            }
            for (slot, _, _) in &cancelled {
                removed.extend(self.end_record(&mut registry, *slot));
            }
        }
        drop(removed);
        for (_, core, outcome) in cancelled {
            self.announce_end(core, outcome);
        }
    }

    fn reap(&mut self, joined: Result<TaskOutput, JoinError>) {
        let now = Instant::now();
        let (slot, id, result) = match joined {
            Ok((slot, id, result)) => (slot, Some(id), Ok(result)),
            Err(error) => match self.take_aborted(&error) {
                Some((slot, cause)) => (slot, None, Err(cause)),
                None => match (error.is_panic(), self.slot_of_task(error.id())) {
                    // A panic outside the caught future: in a tracing
                    // subscriber's span enter or exit. Rare enough that
                    // finding the child by a scan is fine.
                    (true, Some(slot)) => {
                        let payload = error.into_panic();
                        (slot, None, Ok(Err(payload)))
                    }
                    // The runtime shutting down: `try_finish` marks what is
                    // left.
                    _ => return,
                },
            },
        };

        // One lock for the whole decision; what runs user code or takes
        // other locks (finishing, failures) happens after it.
        let mut registry = self.shared.registry();
        let Some(record) = registry.records.get_mut(slot) else {
            return;
        };
        if id.is_some_and(|id| record.core.id != id) || record.stage != Stage::Running {
            return;
        }
        if let (Some(abort), false) = (record.abort.take(), self.aborting.is_empty()) {
            // It finished on its own just as it was being aborted.
            self.aborting.remove(&abort.id());
        }
        let (outcome, abort_cause) = match result {
            Ok(Ok(Ok(()))) if record.attempt_token().is_cancelled() => (Outcome::Stopped, None),
            Ok(Ok(Ok(()))) => (Outcome::Completed, None),
            Ok(Ok(Err(error))) => (Outcome::Failed(Arc::from(error)), None),
            Ok(Err(panic)) => (Outcome::Panicked(panic_message(&*panic)), None),
            Err(cause) => (Outcome::Aborted, Some(cause)),
        };
        let core = Arc::clone(&record.core);
        let failed = matches!(
            (&outcome, abort_cause),
            (Outcome::Failed(_) | Outcome::Panicked(_), _)
                | (
                    Outcome::Aborted,
                    Some(AbortCause::StartTimeout(_) | AbortCause::Wedged(_))
                )
        );
        match &outcome {
            Outcome::Failed(error) => {
                self.scope
                    .events
                    .publish(&self.path, Some(&core.name), core.id, || {
                        EventKind::Failed(Arc::clone(error))
                    });
            }
            Outcome::Panicked(message) => {
                self.scope
                    .events
                    .publish(&self.path, Some(&core.name), core.id, || {
                        EventKind::Panicked(message.clone())
                    });
            }
            _ => {}
        }

        // Stopped on purpose to restart with a sibling; `restart_group`
        // decides whether it starts again.
        if !self.stopping
            && self
                .group
                .as_ref()
                .is_some_and(|group| group.members.contains(&(slot, core.id)))
        {
            record.set_stage(Stage::Held);
            record.last_outcome = Some(Box::new(outcome));
            drop(registry);
            self.down_until_restarted(&core);
            self.group_member_ended();
            return;
        }

        // Not when asked to stop for good (its handle, or the manager
        // stopping, or the manager stopping its background children), nor
        // when its policy says no.
        let winding_down = self.stopping || (core.policy.background && self.background_stopped);
        // The policy first: a token check takes the token's lock.
        let restart = match core.policy.restart {
            Restart::Never => false,
            Restart::OnFailure => failed,
            Restart::Always => true,
        } && !winding_down
            && !core.token.is_cancelled();
        let mut exceeded = None;
        let ran_for = record
            .started_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if let (true, Some(state)) = (restart, record.restart.as_mut()) {
            if state.allow_restart(now) {
                let delay = state.next_delay(failed, ran_for, self.random.next());
                if failed {
                    events::attempt_failed(&self.path, &core.name, core.id, &outcome);
                }
                record.last_outcome = Some(Box::new(outcome));
                self.down_until_restarted(&core);
                // A background helper's restart never takes workers with it.
                let strategy = if core.policy.background {
                    Strategy::OneForOne
                } else {
                    self.shared.settings.strategy
                };
                match strategy {
                    Strategy::OneForOne => {
                        if let Some(state) = record.restart.as_mut() {
                            state.restart_at = Some(later(now, delay));
                        }
                        record.set_stage(Stage::Backoff);
                        self.scheduled += 1;
                        self.timers
                            .push(timer(later(now, delay), TimerKind::Restart, record));
                        drop(registry);
                    }
                    Strategy::OneForAll | Strategy::RestForOne => {
                        record.set_stage(Stage::Held);
                        drop(registry);
                        self.restart_with_siblings(slot, &core, failed, delay);
                    }
                }
                events::child_restarting(
                    &self.path,
                    &core.name,
                    core.id,
                    core.attempt() + 1,
                    delay,
                );
                self.scope
                    .events
                    .publish(&self.path, Some(&core.name), core.id, || {
                        EventKind::Restarting {
                            attempt: core.attempt() + 1,
                            delay,
                        }
                    });
                return;
            }
            exceeded = Some(state.limit);
        }
        let removed = self.end_record(&mut registry, slot);
        drop(registry);
        drop(removed);
        self.settle(core, outcome, abort_cause, exceeded);
    }

    /// Everything that follows a child's final end: its failure, if it
    /// escalates; the manager's stop, if it is significant; its handles.
    fn settle(
        &mut self,
        core: Arc<ChildCore>,
        outcome: Outcome,
        abort_cause: Option<AbortCause>,
        exceeded: Option<RestartLimit>,
    ) {
        let cause = match (&outcome, abort_cause) {
            (Outcome::Failed(error), _) => Some(FailureCause::Error(Arc::clone(error))),
            (Outcome::Panicked(message), _) => Some(FailureCause::Panic(message.clone())),
            (Outcome::Aborted, Some(AbortCause::StartTimeout(timeout))) => {
                Some(FailureCause::StartTimeout { timeout })
            }
            (Outcome::Aborted, Some(AbortCause::Wedged(timeout))) => {
                Some(FailureCause::Wedged { timeout })
            }
            // A child stopped through its own handle and aborted after its
            // grace period has done what was asked: it stopped. Only aborts
            // during the manager's own stop count as failures.
            (Outcome::Aborted, _) if core.was_asked_to_stop() => None,
            (Outcome::Aborted, Some(AbortCause::Grace(grace))) => {
                Some(FailureCause::Aborted { grace })
            }
            _ => None,
        };
        if let (Some(cause), true) = (cause, core.policy.escalate) {
            // A nested manager's failures already carry full paths.
            let nested = match (&outcome, exceeded) {
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
                    let mut failure =
                        ChildFailure::new(self.child_path(&core.name), core.id, cause);
                    if let Some(limit) = exceeded {
                        failure = failure.exceeding(limit);
                    }
                    self.record_failure(failure);
                }
            }
        }
        if core.policy.significant && !self.stopping {
            self.shared.reason.set(ShutdownReason::ChildEnded {
                path: self.child_path(&core.name),
            });
            self.shared.token.cancel();
        }
        self.announce_end(core, outcome);
    }

    /// A child waiting for its restart is not ready, whatever its last
    /// attempt said; its next attempt starts unready.
    fn down_until_restarted(&self, core: &ChildCore) {
        if core.take_ready() && core.policy.reports_ready {
            self.shared.readiness_changed(1);
        }
    }

    /// The slot of the running child whose task has this id.
    fn slot_of_task(&self, task: tokio::task::Id) -> Option<usize> {
        let mut registry = self.shared.registry();
        registry.records.iter_mut().find_map(|(slot, record)| {
            record
                .abort
                .as_ref()
                .is_some_and(|abort| abort.id() == task)
                .then_some(slot)
        })
    }

    /// The slot and cause of a task this loop aborted.
    fn take_aborted(&mut self, error: &JoinError) -> Option<(usize, AbortCause)> {
        if self.aborting.is_empty() {
            return None;
        }
        self.aborting.remove(&error.id())
    }

    /// Stops the siblings a one-for-all or rest-for-one strategy restarts
    /// along with the child in `slot`, which has just ended.
    fn restart_with_siblings(
        &mut self,
        slot: usize,
        core: &Arc<ChildCore>,
        failed: bool,
        delay: Duration,
    ) {
        let now = Instant::now();
        let reason = if failed {
            ShutdownReason::ChildFailed {
                path: self.child_path(&core.name),
            }
        } else {
            ShutdownReason::ChildEnded {
                path: self.child_path(&core.name),
            }
        };
        let mut group = self.group.take().unwrap_or(Group {
            running: 0,
            members: Vec::new(),
            delay,
        });
        group.delay = group.delay.max(delay);
        if !group.members.contains(&(slot, core.id)) {
            group.members.push((slot, core.id));
        }
        {
            let mut registry = self.shared.registry();
            for (sibling_slot, sibling) in registry.records.iter_mut() {
                let id = sibling.core.id;
                let affected = !sibling.core.policy.background
                    && id != core.id
                    && match self.shared.settings.strategy {
                        Strategy::RestForOne => id > core.id,
                        _ => true,
                    };
                if !affected || group.members.contains(&(sibling_slot, id)) {
                    continue;
                }
                match sibling.stage {
                    Stage::Running => {
                        sibling.core.set_restart_reason(reason.clone());
                        sibling.attempt_token().cancel();
                        self.arm_grace(sibling, now);
                        group.running += 1;
                        group.members.push((sibling_slot, id));
                    }
                    Stage::Backoff => {
                        // Its own restart timer goes stale with the stage.
                        sibling.set_stage(Stage::Held);
                        self.scheduled -= 1;
                        group.members.push((sibling_slot, id));
                    }
                    Stage::Pending | Stage::Held | Stage::Ended => {}
                }
            }
        }
        self.group = Some(group);
        if self.group.as_ref().is_some_and(|group| group.running == 0) {
            self.restart_group();
        }
    }

    fn group_member_ended(&mut self) {
        if let Some(group) = &mut self.group {
            group.running = group.running.saturating_sub(1);
            if group.running == 0 {
                self.restart_group();
            }
        }
    }

    /// Every member of the group has ended: schedule their restarts, after
    /// the trigger's delay; members without a restart policy stay stopped.
    fn restart_group(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        let at = later(Instant::now(), group.delay);
        let mut finals = Vec::new();
        {
            let mut registry = self.shared.registry();
            for (slot, id) in group.members {
                let Some(record) = registry.records.get_mut(slot) else {
                    continue;
                };
                if record.core.id != id || record.stage != Stage::Held {
                    continue;
                }
                // Siblings without a restart policy stay stopped, as do
                // children asked to stop through their handle meanwhile.
                if record.core.policy.restart == Restart::Never || record.core.token.is_cancelled()
                {
                    let outcome = record.take_last_outcome();
                    finals.push((slot, Arc::clone(&record.core), outcome));
                } else {
                    if let Some(state) = record.restart.as_mut() {
                        state.restart_at = Some(at);
                    }
                    record.set_stage(Stage::Backoff);
                    self.scheduled += 1;
                    self.timers.push(timer(at, TimerKind::Restart, record));
                }
            }
            let removed: Vec<_> = finals
                .iter()
                .filter_map(|(slot, _, _)| self.end_record(&mut registry, *slot))
                .collect();
            drop(registry);
            drop(removed);
        }
        // Their end is final, with all that follows: a failure of theirs
        // during the group's stop escalates, a significant one stops the
        // manager.
        for (_, core, outcome) in finals {
            self.settle(core, outcome, None, None);
        }
    }

    /// Makes a child's end final without consequences for the manager (it
    /// was waiting for a restart that will not come): its handles see the
    /// outcome, and with auto-cleanup its record goes.
    fn finish(&mut self, slot: usize, core: Arc<ChildCore>, outcome: Outcome) {
        let mut registry = self.shared.registry();
        let removed = self.end_record(&mut registry, slot);
        drop(registry);
        drop(removed);
        self.announce_end(core, outcome);
    }

    /// The part of a final end done under the registry lock. Returns the
    /// removed record, to be dropped after the lock: dropping it drops the
    /// user's process.
    #[must_use]
    fn end_record(&mut self, registry: &mut Registry, slot: usize) -> Option<Record> {
        let record = registry.records.get_mut(slot)?;
        if !record.core.policy.background {
            self.foreground -= 1;
        }
        registry.names.remove(&*record.core.name);
        if record.core.policy.reports_ready && !record.core.is_ready() {
            // An ended child no longer holds its manager's readiness back.
            self.shared.readiness_changed(-1);
        }
        record.set_stage(Stage::Ended);
        record.last_outcome = None;
        record.attempt_token = None;
        if self.shared.settings.auto_cleanup {
            registry.records.remove(slot)
        } else {
            None
        }
    }

    /// The part of [`finish`](Run::finish) done after the lock: events and
    /// waking the child's handles.
    fn announce_end(&self, core: Arc<ChildCore>, outcome: Outcome) {
        events::child_ended(&self.path, &core.name, core.id, &outcome);
        self.scope
            .events
            .publish(&self.path, Some(&core.name), core.id, || {
                EventKind::Stopped(outcome.clone())
            });
        // With auto-cleanup, this is often the last reference: no handle
        // or context is left to see the outcome, so there is no one to wake.
        if Arc::strong_count(&core) > 1 {
            core.finish(outcome);
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
                self.shared.token.cancel();
            }
        }
    }

    fn child_path(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.tasks.abort_all();
            self.shared.abandon();
        }
    }
}

fn abort_child(
    aborting: &mut HashMap<tokio::task::Id, (usize, AbortCause)>,
    scope: &Scope,
    slot: usize,
    record: &mut Record,
    cause: AbortCause,
) {
    if let Some(abort) = &record.abort {
        if let Entry::Vacant(entry) = aborting.entry(abort.id()) {
            let grace = match cause {
                AbortCause::Grace(grace)
                | AbortCause::StartTimeout(grace)
                | AbortCause::Wedged(grace) => grace,
            };
            events::child_aborting(&scope.path, &record.core.name, record.core.id, grace);
            scope
                .events
                .publish(&scope.path, Some(&record.core.name), record.core.id, || {
                    EventKind::Aborted
                });
            abort.abort();
            entry.insert((slot, cause));
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
