use std::any::Any;
use std::sync::{Mutex, MutexGuard, OnceLock};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::Outcome;
use crate::runnable::BoxError;

/// How one attempt's task ended, as the task reports it to its manager.
pub(crate) enum AttemptEnd {
    /// The process's `run` returned this.
    Returned(Result<(), BoxError>),
    /// It panicked, with this payload.
    Panicked(Box<dyn Any + Send>),
    /// Its future was dropped before it finished: the manager aborted it,
    /// or the runtime shut down; `panicking` if a panic outside the
    /// process's caught future was unwinding it.
    Dropped { panicking: bool },
}

/// The one-time "this process has ended, with this outcome" signal that any
/// number of handles can wait for.
///
/// Its `Notify` doubles as a child's "something changed" signal: the inbox
/// wakes the child's context through it too. Everyone who waits registers
/// before checking what they wait for, so a wake-up meant for someone else
/// costs a re-check and nothing is missed; one `Notify` per child instead of
/// two keeps children small.
#[derive(Debug, Default)]
pub(crate) struct EndSignal {
    outcome: OnceLock<Outcome>,
    waiters: Notify,
}

impl EndSignal {
    /// Records the outcome and wakes every waiter; the first outcome wins.
    pub(crate) fn set(&self, outcome: Outcome) {
        // A second `set` happens only when an abandoned manager marks a child
        // that finished at the same moment; the first outcome is the true one.
        let _ = self.outcome.set(outcome);
        self.waiters.notify_waiters();
    }

    pub(crate) fn get(&self) -> Option<&Outcome> {
        self.outcome.get()
    }

    /// Wakes everyone waiting on this signal, without setting it.
    pub(crate) fn wake_all(&self) {
        self.waiters.notify_waiters();
    }

    /// A future that completes at the next wake-up; call `enable` on it
    /// before checking what you wait for.
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.waiters.notified()
    }

    pub(crate) async fn wait(&self) -> Outcome {
        loop {
            let notified = self.waiters.notified();
            tokio::pin!(notified);
            // Registering before checking means a `set` between the check and
            // the `.await` still wakes us.
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            notified.await;
        }
    }
}

/// A manager's "its run has ended, with this outcome" signal. Unlike a
/// child's [`EndSignal`] it can be cleared: a nested manager restarted by
/// its parent runs again, and its handles then speak of the new run.
#[derive(Debug, Default)]
pub(crate) struct RunEnd {
    state: Mutex<RunEndState>,
    waiters: Notify,
}

#[derive(Debug, Default)]
struct RunEndState {
    /// The outcome of the run, once it has ended; `None` while one runs.
    current: Option<Outcome>,
    /// The outcome of the last run that ended, kept across a restart for
    /// those who waited for that run.
    last: Option<Outcome>,
    /// How many runs have ended.
    ended: u64,
}

impl RunEnd {
    fn lock(&self) -> MutexGuard<'_, RunEndState> {
        // Plain data, no code that can panic runs under the lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records how the current run ended and wakes every waiter; within a
    /// run, the first outcome wins (an abandoned manager's run that
    /// finished at the same moment).
    pub(crate) fn set(&self, outcome: Outcome) {
        {
            let mut state = self.lock();
            if state.current.is_some() {
                return;
            }
            state.current = Some(outcome.clone());
            state.last = Some(outcome);
            state.ended += 1;
        }
        self.waiters.notify_waiters();
    }

    /// A new run starts: nothing has ended.
    pub(crate) fn clear(&self) {
        self.lock().current = None;
    }

    pub(crate) fn get(&self) -> Option<Outcome> {
        self.lock().current.clone()
    }

    pub(crate) fn is_set(&self) -> bool {
        self.lock().current.is_some()
    }

    /// The outcome of the run that has ended, or of the one under way once
    /// it ends (even if the manager runs again before this waiter looks).
    pub(crate) async fn wait(&self) -> Outcome {
        let target = {
            let state = self.lock();
            if let Some(outcome) = &state.current {
                return outcome.clone();
            }
            state.ended + 1
        };
        loop {
            let notified = self.waiters.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.ended >= target {
                    if let Some(outcome) = &state.last {
                        return outcome.clone();
                    }
                }
            }
            notified.await;
        }
    }
}
