//! The state a manager shares between its handles and its supervision loop.
//!
//! Everything here sits behind one mutex, held only for short, non-async
//! sections. Inserts and the loop's phase changes take the same lock, which is
//! what makes "every insert either runs its child or hands it back" hold: an
//! insert is accepted only while the phase allows it, and the loop drains
//! accepted inserts under the lock in which it changes the phase.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::ChildOptions;
use super::slab::Slab;
use crate::control::{
    ChildCore, ChildHandle, EndSignal, Outcome, ReasonCell, ShutdownReason, StopListener,
};
use crate::error::{ControlError, InsertError, InsertErrorKind};
use crate::runnable::{DynRunnable, Runnable};

pub(crate) struct ManagerShared {
    pub(crate) name: Cow<'static, str>,
    pub(crate) grace: Duration,
    pub(crate) auto_cleanup: bool,
    /// Cancelled when this manager stops; every child's token is a child of
    /// it, except for background children, which the loop stops last.
    pub(crate) token: CancellationToken,
    pub(crate) reason: Arc<ReasonCell>,
    /// A forced shutdown was requested: abort every child now.
    pub(crate) forced: AtomicBool,
    registry: Mutex<Registry>,
    /// Wakes the supervision loop after an insert or a child's own stop
    /// request; the loop is the only waiter.
    pub(crate) wake: Notify,
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
    pub(crate) records: Slab<Record>,
    /// Slots of accepted children the loop has not spawned yet.
    pub(crate) pending: Vec<usize>,
    /// Children asked to stop through their own handle, whose grace period
    /// the loop must start.
    pub(crate) stop_requests: Vec<(usize, u64)>,
}

pub(crate) struct Record {
    pub(crate) core: Arc<ChildCore>,
    /// The process, until the loop spawns it.
    pub(crate) runnable: Option<Arc<dyn DynRunnable>>,
    /// Set while the child's task runs.
    pub(crate) abort: Option<AbortHandle>,
}

impl ManagerShared {
    pub(crate) fn new(name: Cow<'static, str>, grace: Duration, auto_cleanup: bool) -> Self {
        ManagerShared {
            name,
            grace,
            auto_cleanup,
            token: CancellationToken::new(),
            reason: Arc::default(),
            forced: AtomicBool::new(false),
            registry: Mutex::new(Registry {
                phase: Phase::Idle,
                next_id: 0,
                records: Slab::new(),
                pending: Vec::new(),
                stop_requests: Vec::new(),
            }),
            wake: Notify::new(),
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
        let listener: Weak<dyn StopListener> = Arc::downgrade(self) as _;
        let mut registry = self.registry();
        let refused = match registry.phase {
            Phase::Stopped => Some(InsertErrorKind::Stopped),
            Phase::Stopping => Some(InsertErrorKind::ShuttingDown),
            Phase::Idle | Phase::Running if self.token.is_cancelled() => {
                Some(InsertErrorKind::ShuttingDown)
            }
            Phase::Idle | Phase::Running => None,
        };
        if let Some(kind) = refused {
            return Err(InsertError::new(runnable, kind));
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let slot = registry.records.vacant_key();
        let core = Arc::new(ChildCore::new(
            id,
            slot,
            name,
            options.grace,
            background,
            if background {
                CancellationToken::new()
            } else {
                self.token.child_token()
            },
            listener,
        ));
        registry.records.insert(Record {
            core: Arc::clone(&core),
            runnable: Some(Arc::new(runnable)),
            abort: None,
        });
        registry.pending.push(slot);
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

    pub(crate) fn children(&self) -> Vec<ChildHandle> {
        self.registry()
            .records
            .iter()
            .map(|record| ChildHandle::new(Arc::clone(&record.core)))
            .collect()
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
    }
}

impl StopListener for ManagerShared {
    fn stop_requested(&self, slot: usize, id: u64) {
        self.registry().stop_requests.push((slot, id));
        self.wake.notify_one();
    }
}
