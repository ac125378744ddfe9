use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// An operating-system signal, as far as procmgr cares about it.
///
/// On Unix the named variants are `SIGINT`, `SIGTERM`, `SIGQUIT` and
/// `SIGHUP`; on Windows `Interrupt` is Ctrl-C and the `Ctrl*` variants are the
/// console events.
///
/// # Example
///
/// ```
/// use procmgr::{Context, ShutdownReason, Signal};
///
/// async fn serve(ctx: Context) -> procmgr::Result {
///     ctx.shutdown_requested().await;
///     if let Some(ShutdownReason::Signal(Signal::Interrupt)) = ctx.shutdown_reason() {
///         println!("Ctrl-C: stopping");
///     }
///     Ok(())
/// }
/// # let _ = serve;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// `SIGINT`, or Ctrl-C on Windows.
    Interrupt,
    /// `SIGTERM`.
    Terminate,
    /// `SIGQUIT`.
    Quit,
    /// `SIGHUP`.
    Hangup,
    /// Ctrl-Break (Windows).
    CtrlBreak,
    /// The console window is closing (Windows).
    CtrlClose,
    /// The system is shutting down (Windows).
    CtrlShutdown,
    /// Any other signal, by number (Unix).
    Other(i32),
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Interrupt => f.write_str("SIGINT"),
            Signal::Terminate => f.write_str("SIGTERM"),
            Signal::Quit => f.write_str("SIGQUIT"),
            Signal::Hangup => f.write_str("SIGHUP"),
            Signal::CtrlBreak => f.write_str("Ctrl-Break"),
            Signal::CtrlClose => f.write_str("console close"),
            Signal::CtrlShutdown => f.write_str("system shutdown"),
            Signal::Other(number) => write!(f, "signal {number}"),
        }
    }
}

/// Why shutdown of a process was requested; see
/// [`Context::shutdown_reason`](crate::Context::shutdown_reason).
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, ShutdownReason, process_fn, process_fn_once};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::builder().name("root").build();
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// manager.insert(process_fn_once("worker", move |ctx| async move {
///     ctx.shutdown_requested().await;
///     tx.send(ctx.shutdown_reason())?;
///     Ok(())
/// }))?;
/// manager.insert(process_fn("db", async |_ctx| -> procmgr::Result { Err("gone".into()) }))?;
/// assert!(manager.await.is_err());
/// let reason = rx.recv().await.flatten().expect("a reason");
/// assert_eq!(reason, ShutdownReason::ChildFailed { path: "root/db".into() });
/// assert_eq!(reason.root(), &reason);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// Through a handle: the process's own, or its manager's.
    Requested,
    /// A signal arrived.
    Signal(Signal),
    /// A second signal arrived while the graceful shutdown was running, and
    /// every child still running was aborted.
    Forced(Signal),
    /// A sibling failed; `path` is the failed child's path. Also the reason
    /// a sibling restarted by a one-for-all or rest-for-one strategy sees.
    ChildFailed {
        /// The failed child's path from the root.
        path: String,
    },
    /// A significant child ended (see
    /// [`ChildOptions::significant`](crate::ChildOptions::significant)), or a
    /// sibling ended and is restarted along with this process.
    ChildEnded {
        /// The child's path from the root.
        path: String,
    },
    /// The manager's own parent is shutting down, for this reason.
    Parent(Box<ShutdownReason>),
}

impl ShutdownReason {
    /// The reason at the root of a chain of [`ShutdownReason::Parent`]s.
    pub fn root(&self) -> &ShutdownReason {
        match self {
            ShutdownReason::Parent(reason) => reason.root(),
            other => other,
        }
    }
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownReason::Requested => f.write_str("requested through a handle"),
            ShutdownReason::Signal(signal) => write!(f, "received {signal}"),
            ShutdownReason::Forced(signal) => write!(f, "forced by a second {signal}"),
            ShutdownReason::ChildFailed { path } => write!(f, "process {path} failed"),
            ShutdownReason::ChildEnded { path } => write!(f, "process {path} ended"),
            ShutdownReason::Parent(reason) => write!(f, "parent shutting down: {reason}"),
        }
    }
}

/// A manager's shutdown reason, shared with its children's contexts. The
/// first reason stays, except that a forced shutdown replaces a graceful one.
#[derive(Debug, Default)]
pub(crate) struct ReasonCell(Mutex<Option<ShutdownReason>>);

impl ReasonCell {
    fn lock(&self) -> MutexGuard<'_, Option<ShutdownReason>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self) -> Option<ShutdownReason> {
        self.lock().clone()
    }

    /// Forgets the reason, for a manager that runs again.
    pub(crate) fn clear(&self) {
        *self.lock() = None;
    }

    pub(crate) fn set(&self, reason: ShutdownReason) {
        let mut current = self.lock();
        let replaces = match &*current {
            None => true,
            Some(ShutdownReason::Forced(_)) => false,
            Some(_) => matches!(reason, ShutdownReason::Forced(_)),
        };
        if replaces {
            *current = Some(reason);
        }
    }
}
