//! The supervision loop: one future per manager run that spawns accepted
//! children onto a `JoinSet`, reaps them as they end, and carries out the
//! graceful-then-forced stop.
//!
//! Invariants:
//! - A child's task returns its slot and id along with its result (panics are
//!   caught inside the task), so reaping a child is O(1) and needs no map.
//!   Only aborted tasks come back without a result; they are found through
//!   the small `aborting` map, which holds nothing but the children this
//!   loop aborted.
//! - Grace deadlines: one for the whole manager once it stops, plus a heap
//!   for children with their own grace period or stopped through their own
//!   handle. Stale heap entries (the child ended, its slot reused) are
//!   recognised by id and skipped.
//! - Background children hold tokens of their own, not children of the
//!   manager's; the loop counts the other children and stops the background
//!   ones when that count reaches zero.
//! - The loop holds the registry lock only between `.await`s.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::events;
use super::exit::Exit;
use super::shared::{ManagerShared, Phase, Record};
use crate::control::{Context, ControlMessage, Outcome, ReasonCell, ShutdownReason};
use crate::error::{ChildFailure, ChildFailures, FailureCause, RunError};
use crate::runnable::BoxError;

type TaskOutput = (
    usize,
    u64,
    Result<Result<(), BoxError>, Box<dyn Any + Send>>,
);

/// Runs the manager until every child has ended. `parent` is the manager's
/// own context when it runs as a child of another manager.
pub(crate) async fn supervise(
    shared: &Arc<ManagerShared>,
    mut parent: Option<Context>,
) -> Result<Exit, RunError> {
    {
        let mut registry = shared.registry();
        if registry.phase != Phase::Idle {
            return Err(RunError::AlreadyStarted);
        }
        registry.phase = Phase::Running;
    }
    let path: Arc<str> = match &parent {
        Some(ctx) => ctx.path().into(),
        None => Arc::from(&*shared.name),
    };
    let mut run = Run {
        shared,
        path,
        tasks: JoinSet::new(),
        stopping: false,
        stop_deadline: None,
        deadlines: BinaryHeap::new(),
        aborting: HashMap::new(),
        failures: None,
        foreground: 0,
        background_stopped: false,
        forced: false,
        finished: false,
    };

    loop {
        run.spawn_pending();
        if !run.forced && shared.forced.load(Ordering::Acquire) {
            run.force();
        }
        if run.tasks.is_empty() {
            if run.try_finish() {
                break;
            }
        } else if run.foreground == 0 && !run.background_stopped {
            run.stop_background();
        }
        let next_deadline = run.next_deadline();
        tokio::select! {
            biased;
            () = shared.token.cancelled(), if !run.stopping => {
                run.begin_stop(&parent);
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
            () = sleep_until(next_deadline), if next_deadline.is_some() => run.deadline_passed(),
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

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// One run of a manager; dropping it before it finished (the run's future
/// was dropped) aborts every child.
struct Run<'a> {
    shared: &'a Arc<ManagerShared>,
    path: Arc<str>,
    tasks: JoinSet<TaskOutput>,
    stopping: bool,
    /// When children with the manager's grace period are aborted; set when
    /// the manager starts to stop, cleared once it has passed.
    stop_deadline: Option<Instant>,
    /// Entries stay until their deadline even if their child ends earlier;
    /// the heap is bounded by the children stopped within one grace period.
    deadlines: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    aborting: HashMap<tokio::task::Id, (usize, Duration)>,
    failures: Option<ChildFailures>,
    /// Spawned children that are not background children and have not been
    /// reaped.
    foreground: usize,
    background_stopped: bool,
    forced: bool,
    finished: bool,
}

impl Run<'_> {
    /// Spawns every accepted child and starts the grace period of children
    /// stopped through their own handle.
    fn spawn_pending(&mut self) {
        let now = Instant::now();
        let mut registry = self.shared.registry();
        let registry = &mut *registry;
        for slot in registry.pending.drain(..) {
            let Some(record) = registry.records.get_mut(slot) else {
                continue;
            };
            let grace = record.core.grace;
            if !record.core.background {
                self.foreground += 1;
            }
            spawn_child(&mut self.tasks, &self.path, &self.shared.reason, record);
            // Children spawned while the manager stops are covered by the
            // manager's deadline unless they have a grace period of their own.
            if let (true, Some(grace)) = (self.stopping, grace) {
                self.deadlines
                    .push(Reverse((now + grace, slot, record.core.id)));
            }
        }
        for (slot, id) in registry.stop_requests.drain(..) {
            if let Some(record) = registry.records.get_mut(slot) {
                if record.core.id == id && !record.core.is_finished() {
                    let grace = record.core.grace.unwrap_or(self.shared.grace);
                    self.deadlines.push(Reverse((now + grace, slot, id)));
                }
            }
        }
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
        for (slot, record) in registry.records.iter_mut() {
            if record.core.background && record.abort.is_some() {
                record.core.token.cancel();
                let grace = record.core.grace.unwrap_or(self.shared.grace);
                self.deadlines
                    .push(Reverse((now + grace, slot, record.core.id)));
            }
        }
    }

    /// Aborts every child but the background ones at once.
    fn force(&mut self) {
        self.forced = true;
        let mut registry = self.shared.registry();
        for (slot, record) in registry.records.iter_mut() {
            if !record.core.background {
                abort_child(&mut self.aborting, &self.path, slot, record, Duration::ZERO);
            }
        }
    }

    fn begin_stop(&mut self, parent: &Option<Context>) {
        let now = Instant::now();
        self.stopping = true;
        self.stop_deadline = Some(now + self.shared.grace);
        self.shared.token.cancel();
        if let Some(ctx) = parent {
            // Tell the parent that this manager was asked to stop, so that
            // its outcome there reads "stopped".
            ctx.token().cancel();
        }
        events::manager_stopping(&self.path, self.shared.reason.get().as_ref());
        let mut registry = self.shared.registry();
        registry.phase = Phase::Stopping;
        for (slot, record) in registry.records.iter_mut() {
            if let (Some(grace), Some(_)) = (record.core.grace, &record.abort) {
                self.deadlines
                    .push(Reverse((now + grace, slot, record.core.id)));
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let heap = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
        match (self.stop_deadline, heap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn deadline_passed(&mut self) {
        let now = Instant::now();
        let mut registry = self.shared.registry();
        if self.stop_deadline.is_some_and(|at| at <= now) {
            // Children with a grace period of their own have a heap entry.
            self.stop_deadline = None;
            for (slot, record) in registry.records.iter_mut() {
                if record.core.grace.is_none() {
                    abort_child(
                        &mut self.aborting,
                        &self.path,
                        slot,
                        record,
                        self.shared.grace,
                    );
                }
            }
        }
        while let Some(Reverse((at, slot, id))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(record) = registry.records.get_mut(slot) {
                if record.core.id == id {
                    let grace = record.core.grace.unwrap_or(self.shared.grace);
                    abort_child(&mut self.aborting, &self.path, slot, record, grace);
                }
            }
        }
    }

    fn reap(&mut self, joined: Result<TaskOutput, JoinError>) {
        let (slot, outcome, aborted_after) = match joined {
            Ok((slot, id, result)) => {
                let outcome = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(Outcome::Failed(Arc::from(error))),
                    Err(panic) => Some(Outcome::Panicked(panic_message(&*panic))),
                };
                let mut registry = self.shared.registry();
                let Some(record) = registry.records.get_mut(slot) else {
                    return;
                };
                if record.core.id != id {
                    return;
                }
                if let Some(abort) = &record.abort {
                    // It finished on its own just as it was being aborted.
                    self.aborting.remove(&abort.id());
                }
                let outcome = outcome.unwrap_or(if record.core.token.is_cancelled() {
                    Outcome::Stopped
                } else {
                    Outcome::Completed
                });
                (slot, outcome, None)
            }
            Err(error) => match self.aborting.remove(&error.id()) {
                Some((slot, grace)) => (slot, Outcome::Aborted, Some(grace)),
                // Not a task this loop aborted: only the runtime shutting
                // down gets here, and `try_finish` marks what is left.
                None => return,
            },
        };
        let core = {
            let mut registry = self.shared.registry();
            if registry
                .records
                .get_mut(slot)
                .is_some_and(|record| !record.core.background)
            {
                self.foreground -= 1;
            }
            let core = match registry.records.get_mut(slot) {
                Some(record) => {
                    record.abort = None;
                    Arc::clone(&record.core)
                }
                None => return,
            };
            if self.shared.auto_cleanup {
                registry.records.remove(slot);
            }
            core
        };
        events::child_ended(&self.path, &core.name, core.id, &outcome);
        match &outcome {
            Outcome::Failed(error) => match error.downcast_ref::<RunError>() {
                // A nested manager's failures already carry full paths.
                Some(RunError::ChildFailed(nested)) => {
                    for failure in nested.iter() {
                        self.record_failure(failure.clone());
                    }
                }
                _ => self.record_failure(ChildFailure::new(
                    self.child_path(&core.name),
                    core.id,
                    FailureCause::Error(Arc::clone(error)),
                )),
            },
            Outcome::Panicked(message) => self.record_failure(ChildFailure::new(
                self.child_path(&core.name),
                core.id,
                FailureCause::Panic(message.clone()),
            )),
            // A child stopped through its own handle and aborted after its
            // grace period has done what was asked: it stopped. Only aborts
            // during the manager's own stop count as failures.
            Outcome::Aborted if core.was_asked_to_stop() => {}
            Outcome::Aborted => self.record_failure(ChildFailure::new(
                self.child_path(&core.name),
                core.id,
                FailureCause::Aborted {
                    grace: aborted_after.unwrap_or(self.shared.grace),
                },
            )),
            _ => {}
        }
        core.finish(outcome);
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

fn spawn_child(
    tasks: &mut JoinSet<TaskOutput>,
    path: &Arc<str>,
    reasons: &Arc<ReasonCell>,
    record: &mut Record,
) {
    let Some(runnable) = record.runnable.take() else {
        return;
    };
    let core = Arc::clone(&record.core);
    let (slot, id) = (core.slot, core.id);
    #[cfg(feature = "tracing")]
    let span = events::child_span(path, &core.name, id);
    let ctx = Context::new(core, Arc::clone(path), Arc::clone(reasons));
    let path = Arc::clone(path);
    let task = async move {
        // The start event is inside the caught future: a panicking log or
        // tracing subscriber must fail this child, not lose it.
        let result = AssertUnwindSafe(async move {
            events::child_started(&path, ctx.name(), id);
            runnable.run_boxed(ctx).await
        })
        .catch_unwind()
        .await;
        (slot, id, result)
    };
    #[cfg(feature = "tracing")]
    let task = tracing::Instrument::instrument(task, span);
    record.abort = Some(tasks.spawn(task));
}

fn abort_child(
    aborting: &mut HashMap<tokio::task::Id, (usize, Duration)>,
    path: &str,
    slot: usize,
    record: &mut Record,
    grace: Duration,
) {
    if let Some(abort) = &record.abort {
        if let Entry::Vacant(entry) = aborting.entry(abort.id()) {
            events::child_aborting(path, &record.core.name, record.core.id, grace);
            abort.abort();
            entry.insert((slot, grace));
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
