//! The state a manager shares between its handles and its supervision loop.
//!
//! Everything here sits behind one mutex, held only for short, non-async
//! sections. Inserts and the loop's phase changes take the same lock, which is
//! what makes "every insert either runs its child or hands it back" hold: an
//! insert is accepted only while the phase allows it, and the loop drains
//! accepted inserts under the lock in which it changes the phase.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::registry::{Admission, Phase, Registry, Reserved, Stage};
use super::{ChildInfo, ChildState, ManagerHandle, TreeNode, TreeSnapshot};
use crate::control::{
    AttemptEnd, ChildCore, ChildHandle, ChildKey, ChildName, ChildPolicy, EventHub, Outcome,
    PollWatch, ReasonCell, RunEnd, ShutdownReason, StopListener, Watched,
};
use crate::error::{ControlError, InsertError};
use crate::policy::{ChildOptions, Restart, RestartLimit, RestartState, Strategy};
use crate::runnable::Runnable;

/// How a manager is set up; fixed when it is built.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) name: Cow<'static, str>,
    pub(crate) grace: Duration,
    pub(crate) auto_cleanup: bool,
    pub(crate) strategy: Strategy,
    /// Start the children inserted before the run one by one, each within
    /// this timeout.
    pub(crate) ordered_start: Option<Duration>,
    pub(crate) ordered_stop: bool,
    /// Run on with no child left, until shutdown is requested.
    pub(crate) keep_running: bool,
    /// How long the tree reports unready after a graceful shutdown request
    /// before it asks its children to stop.
    pub(crate) drain: Duration,
    /// The slow-poll threshold of children that do not set their own.
    pub(crate) slow_poll: Option<std::time::Duration>,
    /// Label counters with the child's name too.
    #[cfg(feature = "metrics")]
    pub(crate) metrics_per_child: bool,
    /// At most this many restarts among all children within its window.
    pub(crate) restart_limit: Option<RestartLimit>,
}

pub(crate) struct ManagerShared {
    pub(crate) settings: Settings,
    pub(crate) reason: Arc<ReasonCell>,
    pub(crate) events: Arc<EventHub>,
    /// Set when the manager runs: its path in the tree.
    pub(crate) path: OnceLock<Arc<str>>,
    /// Children whose readiness counts and that are not ready in their
    /// current attempt.
    pub(crate) unready: AtomicUsize,
    /// Woken whenever `unready` reaches zero.
    pub(crate) readiness: Notify,
    /// Children with a reload they have not taken yet (a nested manager
    /// counts until its own children have taken it).
    pub(crate) reloading: AtomicUsize,
    /// Woken whenever `reloading` reaches zero.
    pub(crate) reloaded: Notify,
    /// A forced shutdown was requested: abort every child now.
    pub(crate) forced: AtomicBool,
    registry: Mutex<Registry>,
    /// Wakes the supervision loop after an insert or a child's own stop
    /// request; the loop is the only waiter.
    pub(crate) wake: Notify,
    /// Set when the registry holds work for the loop (an insert, a stop
    /// request, readiness), always before `wake` is notified, so that the
    /// loop's turns without work take no lock.
    pub(crate) work: AtomicBool,
    /// Attempts whose task has ended, in the order they ended, until the
    /// loop reaps them. Its own lock, not the registry's: a task that ends
    /// takes it while the loop may hold the registry's.
    ended: Mutex<Vec<(ChildKey, AttemptEnd)>>,
    /// How the current (or last) run ended.
    pub(crate) end: RunEnd,
    /// Set while it runs nested: its own record in its parent, through
    /// which a stop asked of this manager's handle stops it for good (its
    /// parent does not restart it).
    pub(crate) in_parent: Mutex<Option<Arc<ChildCore>>>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Arc<super::metrics::ManagerMetrics>,
}

impl ManagerShared {
    pub(crate) fn new(settings: Settings) -> Self {
        #[cfg(feature = "metrics")]
        let metrics = Arc::<super::metrics::ManagerMetrics>::default();
        ManagerShared {
            #[cfg(feature = "metrics")]
            registry: Mutex::new(Registry::new(
                settings.strategy != Strategy::OneForOne,
                Arc::clone(&metrics),
            )),
            #[cfg(feature = "metrics")]
            metrics,
            reason: Arc::default(),
            events: Arc::default(),
            path: OnceLock::new(),
            unready: AtomicUsize::new(0),
            readiness: Notify::new(),
            reloading: AtomicUsize::new(0),
            reloaded: Notify::new(),
            forced: AtomicBool::new(false),
            #[cfg(not(feature = "metrics"))]
            registry: Mutex::new(Registry::new(settings.strategy != Strategy::OneForOne)),
            wake: Notify::new(),
            work: AtomicBool::new(false),
            ended: Mutex::new(Vec::new()),
            end: RunEnd::default(),
            in_parent: Mutex::new(None),
            settings,
        }
    }

    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        // Nothing that can panic runs under this lock except allocation, and
        // the registry stays consistent between statements, so a poisoned
        // lock is still usable.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn insert<R: Runnable>(
        self: &Arc<Self>,
        runnable: R,
        options: ChildOptions,
    ) -> Result<ChildHandle, InsertError<R>> {
        let options = options.or(runnable.child_options());
        let exact = options.exact_name.unwrap_or(false);
        let name = ChildName::from(options.name.unwrap_or_else(|| runnable.name()));
        let background = options.background.unwrap_or(false);
        let restart_policy = options.restart.unwrap_or_default();
        // What the insert or the process's options say wins over what the
        // process declares.
        let reports_ready = options
            .reports_ready
            .unwrap_or_else(|| runnable.reports_ready());
        // What allocates happens before the lock, which the loop takes too,
        // except the child's core: its id must be taken under the lock, so
        // that ids follow the order in which children reach the registry
        // (ordered stop and rest-for-one rely on it). A refused insert
        // throws the early work away, which is rare.
        let restart = (restart_policy != Restart::Never).then(|| {
            Box::new(RestartState::new(
                restart_policy,
                options.backoff.unwrap_or_default(),
                options.restart_limit.unwrap_or_default(),
            ))
        });
        let runnable = Arc::new(runnable);

        let mut registry = self.registry();
        // A shutdown requested before the run, or while it starts, refuses
        // inserts before the loop has seen it.
        let reserved = if registry.token().is_cancelled() && !registry.phase().is_stopping() {
            Err((crate::InsertErrorKind::ShuttingDown, name))
        } else {
            registry.reserve(name, exact)
        };
        let Reserved { key, name, hash } = match reserved {
            Ok(reserved) => reserved,
            Err((kind, name)) => {
                drop(registry);
                let manager = self.path().to_string();
                return match Arc::try_unwrap(runnable) {
                    Ok(runnable) => Err(InsertError::new(
                        runnable,
                        kind,
                        manager,
                        name.into_string(),
                    )),
                    Err(_) => unreachable!("nothing else has seen the runnable's Arc"),
                };
            }
        };
        // Only children inserted before the run take part in an ordered
        // start.
        let announce_ready =
            self.settings.ordered_start.is_some() && registry.phase() == Phase::Idle;
        let policy = ChildPolicy {
            grace: options.grace,
            background,
            significant: options.significant.unwrap_or(false),
            escalate: options.escalate.unwrap_or(true),
            announce_ready,
            reports_ready,
            passes_reloads_on: crate::manager::run::DynRunnable::as_manager(&*runnable).is_some(),
            // Nobody said whether it reports, and no ordered start waits for
            // it: a `mark_ready` would be a forgotten declaration.
            undeclared_ready: !reports_ready && options.reports_ready.is_none() && !announce_ready,
        };
        if reports_ready {
            self.unready.fetch_add(1, Ordering::AcqRel);
        }
        let slow_poll = options.slow_poll.or(self.settings.slow_poll);
        let watched = Watched {
            stale_after: options.heartbeat_timeout,
            slow_poll,
        };
        let core = self.new_core(key, name, policy, watched);
        registry.admit(Arc::clone(&core), hash, Admission { runnable, restart });
        let first = self.set_work();
        drop(registry);
        if first {
            self.wake.notify_one();
        }
        Ok(ChildHandle::new(core))
    }

    /// A child's core; its key comes from the registry, under its lock.
    pub(crate) fn new_core(
        self: &Arc<Self>,
        key: ChildKey,
        name: ChildName,
        policy: ChildPolicy,
        watched: Watched,
    ) -> Arc<ChildCore> {
        Arc::new(ChildCore::new(
            key,
            name,
            policy,
            Arc::downgrade(self),
            watched,
            #[cfg(feature = "metrics")]
            Arc::clone(&self.metrics),
        ))
    }

    pub(crate) fn request_shutdown(&self, reason: ShutdownReason) -> Result<(), ControlError> {
        // A nested manager is stopped through its record in its parent, so
        // that the stop is for good: its parent does not restart it, also
        // when the request comes while it waits for its restart. Before its
        // first run it has no record to go through: the lock is held while
        // the token is cancelled, and the run passes the stop on to the
        // parent as it starts (`Run::new`).
        let in_parent = self
            .in_parent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(core) = in_parent.clone() {
            drop(in_parent);
            let core = core.current();
            if !core.is_finished() {
                self.reason.set(reason);
            }
            return core.request_shutdown();
        }
        if self.end.is_set() {
            return Err(ControlError::Ended);
        }
        // The reason goes first so that every child woken by the token sees
        // it.
        self.reason.set(reason);
        self.begin_shutdown();
        Ok(())
    }

    /// Starts a graceful shutdown: the drain, if the manager has one (the
    /// loop asks the children to stop when it is over), or the stop.
    pub(crate) fn begin_shutdown(&self) {
        if self.settings.drain.is_zero() {
            self.stop_run(&self.registry());
        } else {
            self.requested().cancel();
        }
    }

    /// Cancels the current run's token (the next run's before it starts)
    /// and asks every child that stops with it to stop: all but the
    /// background ones, unless the manager stops its children in order
    /// (the loop asks them one by one). Children have no token of their
    /// own, so this is what a child token of the run's token did: every
    /// attempt of theirs sees the stop from now on.
    pub(crate) fn stop_run(&self, registry: &Registry) {
        // Once is enough: a force after a request, and the loop's stop after
        // either, find the children stopped; one prepared later stops as it
        // is prepared (`Run::prepare`), and inserts are refused meanwhile.
        if registry.token().is_cancelled() {
            return;
        }
        registry.token().cancel();
        if self.settings.ordered_stop {
            return;
        }
        for record in registry.records() {
            if !record.core.policy.background() {
                record.core.stop();
            }
        }
    }

    /// The current run's shutdown request (the next run's before it
    /// starts): cancelled at the start of a drain, and by every way of
    /// stopping.
    pub(crate) fn requested(&self) -> CancellationToken {
        self.registry().requested().clone()
    }

    pub(crate) fn force_shutdown(&self, reason: ShutdownReason) -> Result<(), ControlError> {
        self.request_shutdown(reason)?;
        // A force cuts a drain short.
        self.stop_run(&self.registry());
        self.forced.store(true, Ordering::Release);
        self.wake.notify_one();
        Ok(())
    }

    /// Sends a reload to every child that has not ended.
    pub(crate) fn broadcast_reload(&self) -> Result<(), ControlError> {
        let registry = self.registry();
        if registry.phase() == Phase::Finished {
            return Err(ControlError::Ended);
        }
        for record in registry.records() {
            // A child that ended but is kept for inspection needs no reload.
            let _ = record.core.request_reload();
        }
        Ok(())
    }

    /// The manager's path: known once it runs, its name before.
    pub(crate) fn path(&self) -> Arc<str> {
        match self.path.get() {
            Some(path) => Arc::clone(path),
            None => Arc::from(&*self.settings.name),
        }
    }

    /// Every child the registry holds, in insertion order, with a handle of
    /// the manager it is, if it is one.
    pub(crate) fn snapshot(&self) -> Vec<(ChildInfo, Option<ManagerHandle>)> {
        let now = Instant::now();
        let path = self.path();
        // What runs user code (an error's `Display`) or allocates much (the
        // path) happens after the lock: under it, only clones of `Arc`s.
        let registry = self.registry();
        // Set before any attempt starts.
        let run_started = registry.started();
        let seen: Vec<_> = registry
            .records()
            .map(|record| {
                let core = Arc::clone(&record.core);
                let (state, uptime, last) = match record.stage() {
                    Stage::Pending => (Seen::Starting, None, None),
                    Stage::Running(attempt) => (
                        if record.stopping() {
                            Seen::Stopping
                        } else {
                            Seen::Running
                        },
                        run_started.map(|run_started| {
                            now.saturating_duration_since(attempt.started(run_started))
                        }),
                        attempt.previous.as_deref().cloned(),
                    ),
                    Stage::Backoff { at, last, .. } => (
                        Seen::Restarting(Some(at.saturating_duration_since(now))),
                        None,
                        Some((**last).clone()),
                    ),
                    Stage::Held { last, .. } => {
                        (Seen::Restarting(None), None, Some((**last).clone()))
                    }
                    Stage::Ended => (Seen::Ended, None, None),
                };
                (core, state, uptime, last, record.runnable.as_manager())
            })
            .collect();
        drop(registry);
        let mut children: Vec<_> = seen
            .into_iter()
            .map(|(core, state, uptime, last, manager)| {
                let ended = core.end.get().cloned();
                let state = match state {
                    Seen::Starting => ChildState::Starting,
                    Seen::Stopping => ChildState::Stopping,
                    Seen::Running if core.is_ready() => ChildState::Ready,
                    Seen::Running => ChildState::Running,
                    Seen::Restarting(in_) => ChildState::Restarting { in_ },
                    Seen::Ended => ChildState::Ended(ended.clone().unwrap_or(Outcome::Stopped)),
                };
                let last_error = last
                    .as_ref()
                    .and_then(error_message)
                    .or_else(|| ended.as_ref().and_then(error_message));
                let (slow_polls, longest_poll) =
                    core.polls().map_or((0, None), PollWatch::slow_polls);
                let info = ChildInfo {
                    id: core.id,
                    name: core.name.to_string(),
                    path: format!("{path}/{}", core.name),
                    state,
                    restarts: core.attempt().saturating_sub(1),
                    uptime,
                    last_error,
                    slow_polls,
                    longest_poll,
                    blocking: core.polls().and_then(PollWatch::blocking),
                };
                (info, manager)
            })
            .collect();
        children.sort_by_key(|(info, _)| info.id);
        children
    }

    /// This manager's children, nested managers walked.
    pub(crate) fn tree(&self) -> TreeSnapshot {
        TreeSnapshot {
            path: self.path().to_string(),
            children: self
                .snapshot()
                .into_iter()
                .map(|(info, manager)| TreeNode {
                    info,
                    subtree: manager.map(|manager| manager.shared().tree()),
                })
                .collect(),
        }
    }

    /// The live child with this name.
    pub(crate) fn child(&self, name: &str) -> Option<(ChildHandle, Option<ManagerHandle>)> {
        let registry = self.registry();
        let record = registry.by_name(name)?;
        Some((
            ChildHandle::new(Arc::clone(&record.core)),
            record.runnable.as_manager(),
        ))
    }

    pub(crate) fn children(&self) -> Vec<ChildHandle> {
        self.registry()
            .records()
            .map(|record| ChildHandle::new(Arc::clone(&record.core)))
            .collect()
    }

    /// One child more (`ready == false`) or fewer (`true`) to wait for.
    /// When the count reaches zero it wakes the waiters, and when it reaches
    /// or leaves zero the loop, which tells a parent manager.
    pub(crate) fn readiness_changed(&self, ready: bool) {
        let now_unready = if ready {
            // Every decrement pairs with an earlier increment for the same
            // child (the attempt word decides which side wins), so this
            // never goes below zero.
            self.unready.fetch_sub(1, Ordering::AcqRel) - 1
        } else {
            self.unready.fetch_add(1, Ordering::AcqRel) + 1
        };
        if now_unready == 0 {
            self.readiness.notify_waiters();
        }
        if now_unready <= 1 {
            self.give_work();
        }
    }

    /// Waits until no child has a reload it has not taken.
    pub(crate) async fn reloaded(&self) {
        loop {
            let notified = self.reloaded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.reloading.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The paths of the running children, nested managers' included, whose
    /// last heartbeat is older than their heartbeat timeout. A child asked
    /// to stop is left out: its grace period bounds it instead.
    pub(crate) fn stale_children(&self, out: &mut Vec<String>) {
        let mut nested = Vec::new();
        let mut stale = Vec::new();
        {
            let registry = self.registry();
            let Some(started) = registry.started() else {
                return;
            };
            for record in registry.records() {
                if !matches!(record.stage(), Stage::Running(_)) {
                    continue;
                }
                if let Some(manager) = record.runnable.as_manager() {
                    nested.push(manager);
                }
                let Some(stale_after) = record.core.stale_after() else {
                    continue;
                };
                let asked_to_stop = record.stopping();
                if !asked_to_stop && record.core.since_beat(started) >= stale_after {
                    stale.push(Arc::clone(&record.core));
                }
            }
        }
        let path = self.path();
        out.extend(stale.iter().map(|core| format!("{path}/{}", core.name)));
        for manager in nested {
            manager.shared().stale_children(out);
        }
    }

    /// Waits until no child whose readiness counts is unready.
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.readiness.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.unready.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Marks the manager's run and every child it still holds as ended, for
    /// when the run ends without finishing: its future was dropped (which
    /// aborts the children's tasks) or it was never run. Does nothing after
    /// a run that finished. A nested manager may still be run again by its
    /// parent; its events go on until the manager itself is dropped.
    pub(crate) fn abandon(&self, may_run_again: bool) {
        let records: Vec<_> = {
            let mut registry = self.registry();
            if registry.phase() == Phase::Finished {
                return;
            }
            if may_run_again && registry.phase() == Phase::Idle {
                // Never run, and nested: what its parent may run again is
                // every child.
                registry.keep_spec();
            }
            registry.set_phase(Phase::Finished);
            self.stop_run(&registry);
            registry.drain()
        };
        for record in &records {
            if let Some(attempt) = record.attempt() {
                if let Some(task) = &attempt.task {
                    task.abort();
                }
            }
            // A nested manager kept alive elsewhere (an `Arc`, or its record
            // in a parent that keeps ended records) never runs again.
            if let Some(manager) = record.runnable.as_manager() {
                manager.shared().abandon(true);
            }
            record.core.finish(Outcome::Aborted);
        }
        self.end.set(Outcome::Aborted);
        drop(records);
    }
}

impl ManagerShared {
    /// Tells the loop that the registry holds work for its next turn: sets
    /// `work`, and wakes the loop only if `work` was not set already.
    pub(crate) fn give_work(&self) {
        if self.set_work() {
            self.wake.notify_one();
        }
    }

    /// Sets `work`; `true` if it was not set, when the caller must wake the
    /// loop (after releasing the registry lock, if it holds it). While it
    /// is set the loop has not begun the turn that clears it (`Run::turn`),
    /// and that turn sees this work, so a second wake-up would only cost
    /// the loop an empty turn: a burst of inserts wakes it once.
    pub(crate) fn set_work(&self) -> bool {
        // Pairs with the loop's `swap(false)`: what was put in the registry
        // before this is seen by the turn that clears it.
        !self.work.swap(true, Ordering::AcqRel)
    }

    /// Moves the attempts that have ended into `into` (empty), oldest first,
    /// leaving `into`'s capacity for the next reports.
    pub(crate) fn take_ended(&self, into: &mut Vec<(ChildKey, AttemptEnd)>) {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *ended, into);
    }
}

impl StopListener for ManagerShared {
    fn attempt_ended(&self, key: ChildKey, end: AttemptEnd) {
        // Nothing that can panic runs under this lock but the push.
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        let first = ended.is_empty();
        ended.push((key, end));
        drop(ended);
        // One wake-up per batch: the loop takes every report at once, so
        // only the first report after it took them needs to wake it. A
        // wake-up while it runs is kept for its next wait.
        if first {
            self.wake.notify_one();
        }
    }

    fn stop_requested(&self, key: ChildKey) {
        self.registry().push_stop_request(key);
        self.give_work();
    }

    fn counted_ready(&self, ready: bool) {
        self.readiness_changed(ready);
    }

    fn reload_pending(&self, pending: bool) {
        if pending {
            self.reloading.fetch_add(1, Ordering::AcqRel);
        } else if self.reloading.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Every decrement pairs with an earlier increment for the same
            // child (its inbox flag decides), so this is the last one.
            self.reloaded.notify_waiters();
            // A nested manager tells its parent from its loop.
            self.give_work();
        }
    }

    fn child_ready(&self, key: ChildKey) {
        self.registry().push_ready(key);
        self.give_work();
    }
}

/// A child's state as seen under the lock, finished after it.
enum Seen {
    Starting,
    Running,
    Stopping,
    Restarting(Option<Duration>),
    Ended,
}

fn error_message(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Failed(error) => Some(error.to_string()),
        Outcome::Panicked(message) => Some(message.clone()),
        _ => None,
    }
}
