use std::sync::OnceLock;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::Outcome;

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
