use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;

use super::{ChildName, Outcome, ShutdownReason};

/// How many events a subscriber may fall behind before it starts missing
/// them (it then learns how many it missed).
pub const EVENT_CAPACITY: usize = 1024;

/// Something that happened to a process in a manager's subtree; see
/// [`ManagerHandle::subscribe`](crate::ManagerHandle::subscribe).
///
/// # Example
///
/// ```
/// use procmgr::{EventKind, EventsError, ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::builder().name("root").build();
/// let mut events = manager.handle().subscribe();
/// manager.insert(process_fn("job", async |_ctx| -> procmgr::Result { Ok(()) }))?;
/// manager.await?;
/// let mut seen = Vec::new();
/// loop {
///     match events.recv().await {
///         Ok(event) => {
///             if let EventKind::Started { attempt } = event.kind() {
///                 assert_eq!((event.path(), *attempt), ("root/job", 1));
///             }
///             seen.push(event.to_string());
///         }
///         Err(EventsError::Lagged(missed)) => println!("missed {missed} events"),
///         Err(EventsError::Ended) => break,
///         Err(_) => break,
///     }
/// }
/// assert_eq!(seen.len(), 2, "{seen:?}"); // started, then stopped (completed)
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LifecycleEvent {
    path: Arc<str>,
    id: u64,
    kind: EventKind,
}

impl LifecycleEvent {
    /// The path of the process it happened to, such as
    /// `root/consumers/kafka-0`; a manager's own events carry its path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The process's id in its manager (a manager's own events: 0).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What happened.
    pub fn kind(&self) -> &EventKind {
        &self.kind
    }
}

impl fmt::Display for LifecycleEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

/// What happened to a process.
///
/// # Example
///
/// ```
/// use procmgr::{EventKind, LifecycleEvent};
///
/// /// One line for an operator's log, for the events worth one.
/// fn log_line(event: &LifecycleEvent) -> Option<String> {
///     match event.kind() {
///         EventKind::Failed(error) => Some(format!("{} failed: {error}", event.path())),
///         EventKind::Panicked(message) => Some(format!("{} panicked: {message}", event.path())),
///         EventKind::Restarting { attempt, delay } => {
///             Some(format!("{} restarts (attempt {attempt}) in {delay:?}", event.path()))
///         }
///         EventKind::Aborted => Some(format!("{} aborted", event.path())),
///         _ => None,
///     }
/// }
/// # let _ = log_line;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EventKind {
    /// An attempt started.
    Started {
        /// Which attempt, from 1.
        attempt: u32,
    },
    /// The process said it is ready.
    Ready,
    /// The process received a reload.
    ReloadDelivered,
    /// An attempt returned this error (a restart may follow).
    Failed(Arc<dyn Error + Send + Sync + 'static>),
    /// An attempt panicked with this message (a restart may follow).
    Panicked(String),
    /// The manager aborts the process: its grace period is over, or the
    /// shutdown was forced.
    Aborted,
    /// The process will start again after `delay`.
    Restarting {
        /// The attempt that will start.
        attempt: u32,
        /// The backoff before it.
        delay: Duration,
    },
    /// The process ended for good, with this outcome.
    Stopped(Outcome),
    /// A manager was asked to shut down, for this reason.
    ShutdownRequested(ShutdownReason),
    /// A manager with a [drain period](crate::ProcessManagerBuilder::drain_period)
    /// was asked to shut down: it reports unready for `period`, then its
    /// [`ShutdownRequested`](EventKind::ShutdownRequested) follows.
    Draining {
        /// How long the drain lasts, unless something cuts it short.
        period: Duration,
        /// Why shutdown was requested.
        reason: ShutdownReason,
    },
    /// One poll of the process's future blocked its thread for longer than
    /// its slow-poll threshold
    /// ([`ChildOptions::slow_poll`](crate::ChildOptions::slow_poll));
    /// published when the poll returns.
    SlowPoll {
        /// How long the poll took.
        took: Duration,
        /// The threshold it exceeded.
        threshold: Duration,
    },
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Started { attempt } => write!(f, "started (attempt {attempt})"),
            EventKind::Ready => f.write_str("ready"),
            EventKind::ReloadDelivered => f.write_str("reload delivered"),
            EventKind::Failed(error) => write!(f, "failed: {error}"),
            EventKind::Panicked(message) => write!(f, "panicked: {message}"),
            EventKind::Aborted => f.write_str("aborted"),
            EventKind::Restarting { attempt, delay } => {
                write!(f, "restarting as attempt {attempt} in {delay:?}")
            }
            EventKind::Stopped(outcome) => write!(f, "ended: {outcome}"),
            EventKind::ShutdownRequested(reason) => write!(f, "shutting down: {reason}"),
            EventKind::Draining { period, reason } => {
                write!(f, "draining for {period:?}: {reason}")
            }
            EventKind::SlowPoll { took, threshold } => {
                write!(f, "slow poll: {took:?} (threshold {threshold:?})")
            }
        }
    }
}

/// A subscription to a manager's lifecycle events, from
/// [`ManagerHandle::subscribe`](crate::ManagerHandle::subscribe).
///
/// Events are kept for a subscriber that falls behind up to
/// [`EVENT_CAPACITY`]; beyond that the oldest are dropped and
/// [`recv`](Events::recv) says how many it missed. A subscriber never slows
/// the manager down.
///
/// # Example
///
/// ```
/// use procmgr::{EventKind, IdleProcess, ProcessManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// manager.insert(IdleProcess)?;
/// let handle = manager.handle();
/// let mut events = handle.subscribe();
/// let run = tokio::spawn(manager.into_future());
/// // Wait until the child says it is ready, then stop the tree.
/// while let Ok(event) = events.recv().await {
///     if matches!(event.kind(), EventKind::Ready) {
///         break;
///     }
/// }
/// handle.shutdown().await;
/// run.await??;
/// # Ok(())
/// # }
/// ```
pub struct Events {
    receiver: broadcast::Receiver<LifecycleEvent>,
    hub: Arc<EventHub>,
}

/// Why [`Events::recv`] returned no event.
///
/// # Example
///
/// ```
/// use procmgr::{EventsError, ProcessManager};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// let mut events = manager.handle().subscribe();
/// manager.await?; // no child: the run ends at once
/// // Its own shutdown-requested event may come first; then the end.
/// loop {
///     match events.recv().await {
///         Ok(_) => continue,
///         Err(error) => {
///             assert_eq!(error, EventsError::Ended);
///             break;
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventsError {
    /// The subscriber fell behind and missed this many events; the next
    /// `recv` returns the oldest event still kept.
    Lagged(u64),
    /// The manager's run has ended and every event has been received.
    Ended,
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventsError::Lagged(missed) => write!(f, "missed {missed} lifecycle events"),
            EventsError::Ended => f.write_str("process manager has ended"),
        }
    }
}

impl Error for EventsError {}

impl Events {
    /// Waits for the next event.
    ///
    /// # Errors
    ///
    /// [`EventsError::Lagged`] once after events were missed,
    /// [`EventsError::Ended`] when the manager has ended and nothing is
    /// left.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: an event is taken only when it is
    /// returned.
    pub async fn recv(&mut self) -> Result<LifecycleEvent, EventsError> {
        self.receiver.recv().await.map_err(|error| match error {
            broadcast::error::RecvError::Lagged(missed) => EventsError::Lagged(missed),
            broadcast::error::RecvError::Closed => EventsError::Ended,
        })
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::Release);
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// One manager's event channel. Publishing costs one atomic load while
/// nobody subscribes, and the channel's buffer is allocated by the first
/// subscriber: a manager nobody watches pays nothing for it.
#[derive(Default)]
pub(crate) struct EventHub {
    channel: Mutex<Channel>,
    subscribers: AtomicUsize,
}

#[derive(Default)]
enum Channel {
    /// Nobody has subscribed yet.
    #[default]
    Unused,
    Open(broadcast::Sender<LifecycleEvent>),
    /// The manager's run has ended, which ends the subscriptions.
    Closed,
}

impl EventHub {
    fn channel(&self) -> MutexGuard<'_, Channel> {
        self.channel.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn subscribe(self: &Arc<Self>) -> Events {
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        let receiver = {
            let mut channel = self.channel();
            match &*channel {
                Channel::Open(sender) => sender.subscribe(),
                Channel::Unused => {
                    let (sender, receiver) = broadcast::channel(EVENT_CAPACITY);
                    *channel = Channel::Open(sender);
                    receiver
                }
                // Already ended: a receiver of a dropped channel says so at
                // once.
                Channel::Closed => broadcast::channel(1).0.subscribe(),
            }
        };
        Events {
            receiver,
            hub: Arc::clone(self),
        }
    }

    pub(crate) fn close(&self) {
        let channel = std::mem::replace(&mut *self.channel(), Channel::Closed);
        // Dropped after the lock: the last sender going drops queued events.
        drop(channel);
    }

    fn has_subscribers(&self) -> bool {
        self.subscribers.load(Ordering::Acquire) > 0
    }

    fn send(&self, event: LifecycleEvent) {
        if let Channel::Open(sender) = &*self.channel() {
            // Err means every subscriber is gone, which is fine.
            let _ = sender.send(event);
        }
    }
}

/// The event hubs of a manager and of every manager above it: an event in a
/// subtree reaches the subscribers of each ancestor.
#[derive(Clone, Default)]
pub(crate) struct EventHubs(Arc<[Arc<EventHub>]>);

impl fmt::Debug for EventHubs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHubs")
            .field("levels", &self.0.len())
            .finish()
    }
}

impl EventHubs {
    /// The hubs of `parent` with `own` added.
    pub(crate) fn with(parent: Option<&EventHubs>, own: &Arc<EventHub>) -> Self {
        let mut hubs: Vec<Arc<EventHub>> = parent.map(|p| p.0.to_vec()).unwrap_or_default();
        hubs.push(Arc::clone(own));
        EventHubs(hubs.into())
    }

    /// Publishes the event built by `kind` for the process at
    /// `parent_path/name`; builds nothing while nobody listens.
    pub(crate) fn publish(
        &self,
        parent_path: &str,
        name: Option<&ChildName>,
        id: u64,
        kind: impl FnOnce() -> EventKind,
    ) {
        if !self.0.iter().any(|hub| hub.has_subscribers()) {
            return;
        }
        let path: Arc<str> = match name {
            Some(name) => format!("{parent_path}/{name}").into(),
            None => parent_path.into(),
        };
        let event = LifecycleEvent {
            path,
            id,
            kind: kind(),
        };
        for hub in self.0.iter().filter(|hub| hub.has_subscribers()) {
            hub.send(event.clone());
        }
    }
}
