//! The state a manager shares between its handles and its supervision loop.
//!
//! Everything here sits behind one mutex, held only for short, non-async
//! sections. Inserts and the loop's phase changes take the same lock, which is
//! what makes "every insert either runs its child or hands it back" hold: an
//! insert is accepted only while the phase allows it, and the loop drains
//! accepted inserts under the lock in which it changes the phase.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::restart::RestartState;
use super::slab::Slab;
use super::{
    ChildInfo, ChildOptions, ChildState, ManagerHandle, Restart, Strategy, TreeNode, TreeSnapshot,
};
use crate::control::{
    ChildCore, ChildHandle, ChildPolicy, EndSignal, EventHub, Outcome, ReasonCell, ShutdownReason,
    StopListener,
};
use crate::error::{ControlError, InsertError, InsertErrorKind};
use crate::runnable::{DynRunnable, Runnable, short_type_name};

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
}

pub(crate) struct ManagerShared {
    pub(crate) settings: Settings,
    /// Cancelled when this manager stops; every child's token is a child of
    /// it, except for background children, which the loop stops last.
    pub(crate) token: CancellationToken,
    pub(crate) reason: Arc<ReasonCell>,
    pub(crate) events: Arc<EventHub>,
    /// Set when the manager runs: its path in the tree.
    pub(crate) path: OnceLock<Arc<str>>,
    /// Children whose readiness counts and that are not ready in their
    /// current attempt.
    pub(crate) unready: AtomicUsize,
    /// Woken whenever `unready` reaches zero.
    pub(crate) readiness: Notify,
    /// A forced shutdown was requested: abort every child now.
    pub(crate) forced: AtomicBool,
    registry: Mutex<Registry>,
    /// Wakes the supervision loop after an insert or a child's own stop
    /// request; the loop is the only waiter.
    pub(crate) wake: Notify,
    /// Set (under the registry lock) when the registry holds work for the
    /// loop, so that the loop's turns without work take no lock.
    pub(crate) work: AtomicBool,
    pub(crate) end: EndSignal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Running,
    Stopping,
    Stopped,
}

pub(crate) struct Registry {
    pub(crate) phase: Phase,
    next_id: u64,
    /// Live children by name, for lookups and to keep names unique.
    pub(crate) names: HashMap<Cow<'static, str>, usize>,
    pub(crate) records: Slab<Record>,
    /// Slots of accepted children the loop has not spawned yet.
    pub(crate) pending: Vec<usize>,
    /// Children asked to stop through their own handle, whose grace period
    /// the loop must start.
    pub(crate) stop_requests: Vec<(usize, u64)>,
    /// Children that said they are ready while the loop waits for them.
    pub(crate) ready: Vec<(usize, u64)>,
}

/// Where a child is in its life, as the loop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Accepted, not spawned yet.
    Pending,
    /// An attempt runs.
    Running,
    /// Waiting for its restart.
    Backoff,
    /// Ended, waiting for the siblings a strategy restarts with it.
    Held,
    /// Ended for good; the record stays only with auto-cleanup off.
    Ended,
}

pub(crate) struct Record {
    pub(crate) core: Arc<ChildCore>,
    pub(crate) runnable: Arc<dyn DynRunnable>,
    pub(crate) stage: Stage,
    /// Counts stage changes; a timer remembers the epoch it was set in and
    /// is void once the child has moved on.
    pub(crate) epoch: u32,
    /// Set while an attempt's task runs.
    pub(crate) abort: Option<AbortHandle>,
    /// The running attempt's token, when it is not the child's own (the
    /// child may be restarted, so the manager must be able to stop one
    /// attempt alone).
    pub(crate) attempt_token: Option<CancellationToken>,
    /// Only children with a restart policy have one.
    pub(crate) restart: Option<Box<RestartState>>,
    /// When the running attempt started.
    pub(crate) started_at: Option<Instant>,
    /// How the last attempt ended, kept while the child may be restarted;
    /// boxed because most records never need it and every record pays for
    /// its size.
    pub(crate) last_outcome: Option<Box<Outcome>>,
}

impl Record {
    /// How the last attempt ended; `Stopped` if none was kept.
    pub(crate) fn take_last_outcome(&mut self) -> Outcome {
        self.last_outcome
            .take()
            .map_or(Outcome::Stopped, |outcome| *outcome)
    }

    pub(crate) fn set_stage(&mut self, stage: Stage) {
        self.stage = stage;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// The token that stops the running attempt.
    pub(crate) fn attempt_token(&self) -> &CancellationToken {
        self.attempt_token.as_ref().unwrap_or(&self.core.token)
    }
}

impl ManagerShared {
    pub(crate) fn new(settings: Settings) -> Self {
        ManagerShared {
            settings,
            token: CancellationToken::new(),
            reason: Arc::default(),
            events: Arc::default(),
            path: OnceLock::new(),
            unready: AtomicUsize::new(0),
            readiness: Notify::new(),
            forced: AtomicBool::new(false),
            registry: Mutex::new(Registry {
                phase: Phase::Idle,
                next_id: 0,
                names: HashMap::new(),
                records: Slab::new(),
                pending: Vec::new(),
                stop_requests: Vec::new(),
                ready: Vec::new(),
            }),
            wake: Notify::new(),
            work: AtomicBool::new(false),
            end: EndSignal::default(),
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
        let name = options.name.unwrap_or_else(|| runnable.name());
        let background = options.background.unwrap_or(false);
        let restart_policy = options.restart.unwrap_or_default();
        let reports_ready = options.reports_ready.unwrap_or(false);
        // Background children, and all children of a manager that stops
        // them in order, are stopped by the loop one by one rather than all
        // at once through the manager's token.
        let token = if background || self.settings.ordered_stop {
            CancellationToken::new()
        } else {
            self.token.child_token()
        };
        // What allocates happens before the lock, which the loop takes too,
        // except the child's core: its id must be taken under the lock, so
        // that ids follow the order in which children reach the registry
        // (ordered stop and rest-for-one rely on it). A refused insert
        // throws the early work away, which is rare.
        let listener: Weak<dyn StopListener> = Arc::downgrade(self) as _;
        let restart = (restart_policy != Restart::Never).then(|| {
            Box::new(RestartState::new(
                options.backoff.unwrap_or_default(),
                options.restart_limit.unwrap_or_default(),
            ))
        });
        let runnable = Arc::new(runnable);

        let mut registry = self.registry();
        let refused = match registry.phase {
            Phase::Stopped => Some(InsertErrorKind::Stopped),
            Phase::Stopping => Some(InsertErrorKind::ShuttingDown),
            Phase::Idle | Phase::Running if self.token.is_cancelled() => {
                Some(InsertErrorKind::ShuttingDown)
            }
            Phase::Idle | Phase::Running => None,
        };
        // A repeated default name gets the child's id as a suffix
        // (`Worker`, `Worker-3`), so that live siblings' names stay unique
        // without every child of a type needing a name of its own.
        let id = registry.next_id;
        let mut name = name;
        // Names are unique among live siblings: a name the user chose that
        // is taken is refused. Whether the name is the type's default is
        // only worked out when it is taken.
        if registry.names.contains_key(&name) && name == short_type_name(std::any::type_name::<R>())
        {
            name = Cow::Owned(format!("{name}-{id}"));
        }
        let refused = refused.or(registry
            .names
            .contains_key(&name)
            .then_some(InsertErrorKind::DuplicateName));
        if let Some(kind) = refused {
            drop(registry);
            return match Arc::try_unwrap(runnable) {
                Ok(runnable) => Err(InsertError::new(runnable, kind)),
                Err(_) => unreachable!("nothing else has seen the runnable's Arc"),
            };
        }
        registry.next_id += 1;
        let slot = registry.records.vacant_key();
        let policy = ChildPolicy {
            grace: options.grace,
            background,
            restart: restart_policy,
            significant: options.significant.unwrap_or(false),
            escalate: options.escalate.unwrap_or(true),
            // Only children inserted before the run take part in an ordered
            // start.
            announce_ready: self.settings.ordered_start.is_some() && registry.phase == Phase::Idle,
            reports_ready,
            stale_after: options.heartbeat_timeout,
        };
        if reports_ready {
            self.unready.fetch_add(1, Ordering::AcqRel);
        }
        registry.names.insert(name.clone(), slot);
        let core = Arc::new(ChildCore::new(id, name, policy, token, listener));
        core.set_slot(slot);
        registry.records.insert(Record {
            core: Arc::clone(&core),
            runnable,
            stage: Stage::Pending,
            epoch: 0,
            abort: None,
            attempt_token: None,
            restart,
            started_at: None,
            last_outcome: None,
        });
        registry.pending.push(slot);
        self.work.store(true, Ordering::Release);
        drop(registry);
        self.wake.notify_one();
        Ok(ChildHandle::new(core))
    }

    pub(crate) fn request_shutdown(&self, reason: ShutdownReason) -> Result<(), ControlError> {
        if self.end.get().is_some() {
            return Err(ControlError::Ended);
        }
        // The reason goes first so that every child woken by the token sees
        // it.
        self.reason.set(reason);
        self.token.cancel();
        Ok(())
    }

    pub(crate) fn force_shutdown(&self, reason: ShutdownReason) -> Result<(), ControlError> {
        self.request_shutdown(reason)?;
        self.forced.store(true, Ordering::Release);
        self.wake.notify_one();
        Ok(())
    }

    /// Sends a reload to every child that has not ended.
    pub(crate) fn broadcast_reload(&self) -> Result<(), ControlError> {
        let registry = self.registry();
        if registry.phase == Phase::Stopped {
            return Err(ControlError::Ended);
        }
        for record in registry.records.iter() {
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
        let registry = self.registry();
        let mut children: Vec<_> = registry
            .records
            .iter()
            .map(|record| {
                let core = &record.core;
                let state = match record.stage {
                    Stage::Pending => ChildState::Starting,
                    Stage::Running if record.attempt_token().is_cancelled() => ChildState::Stopping,
                    Stage::Running if core.is_ready() => ChildState::Ready,
                    Stage::Running => ChildState::Running,
                    Stage::Backoff => ChildState::Restarting {
                        in_: record
                            .restart
                            .as_ref()
                            .and_then(|restart| restart.restart_at)
                            .map(|at| at.saturating_duration_since(now)),
                    },
                    Stage::Held => ChildState::Restarting { in_: None },
                    Stage::Ended => {
                        ChildState::Ended(core.end.get().cloned().unwrap_or(Outcome::Stopped))
                    }
                };
                let uptime = match record.stage {
                    Stage::Running => record
                        .started_at
                        .map(|at| now.saturating_duration_since(at)),
                    _ => None,
                };
                let last_error = record
                    .last_outcome
                    .as_deref()
                    .and_then(error_message)
                    .or_else(|| core.end.get().and_then(error_message));
                let info = ChildInfo {
                    id: core.id,
                    name: core.name.to_string(),
                    path: format!("{path}/{}", core.name),
                    state,
                    restarts: core.attempt().saturating_sub(1),
                    uptime,
                    last_error,
                };
                (info, record.runnable.as_manager())
            })
            .collect();
        drop(registry);
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
        let record = registry.records.get(*registry.names.get(name)?)?;
        Some((
            ChildHandle::new(Arc::clone(&record.core)),
            record.runnable.as_manager(),
        ))
    }

    pub(crate) fn children(&self) -> Vec<ChildHandle> {
        self.registry()
            .records
            .iter()
            .map(|record| ChildHandle::new(Arc::clone(&record.core)))
            .collect()
    }

    /// One child more (`+1`) or fewer (`-1`) to wait for; wakes the waiters
    /// and the loop (which tells a parent) when none is left.
    pub(crate) fn readiness_changed(&self, delta: isize) {
        let now_unready = if delta > 0 {
            self.unready.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.unready.fetch_sub(1, Ordering::AcqRel) - 1
        };
        if now_unready == 0 {
            self.readiness.notify_waiters();
            self.work.store(true, Ordering::Release);
            self.wake.notify_one();
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

    /// Marks the manager and every child it still holds as ended, for when
    /// the manager goes away without finishing its run: its future was
    /// dropped (which aborts the children's tasks) or it was never run.
    /// Does nothing after a run that finished.
    pub(crate) fn abandon(&self) {
        let records: Vec<Record> = {
            let mut registry = self.registry();
            if registry.phase == Phase::Stopped {
                return;
            }
            registry.phase = Phase::Stopped;
            registry.pending.clear();
            registry.records.drain().collect()
        };
        self.token.cancel();
        for record in records {
            if let Some(abort) = &record.abort {
                abort.abort();
            }
            record.core.finish(Outcome::Aborted);
        }
        self.end.set(Outcome::Aborted);
        self.events.close();
    }
}

impl StopListener for ManagerShared {
    fn stop_requested(&self, slot: usize, id: u64) {
        self.registry().stop_requests.push((slot, id));
        self.work.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn counted_ready(&self) {
        self.readiness_changed(-1);
    }

    fn child_ready(&self, slot: usize, id: u64) {
        self.registry().ready.push((slot, id));
        self.work.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

fn error_message(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Failed(error) => Some(error.to_string()),
        Outcome::Panicked(message) => Some(message.clone()),
        _ => None,
    }
}
