//! [`ChildHandle`]: what an insert returns to control one child.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::child::Current;
use super::{ChildCore, Outcome, ProcessControlHandler};
use crate::error::{ControlError, SendError};

/// A handle to one child: stop it, reload it, send it messages, wait for it.
///
/// Returned by [`ManagerHandle::insert`](crate::ManagerHandle::insert). It is
/// cheap to clone, can be used from any task, and keeps working after the
/// child has ended: requests then return [`ControlError::Ended`] and
/// [`wait`](ChildHandle::wait) returns the outcome at once.
/// Dropping a handle does nothing to the child.
///
/// The handle of a child its manager was built with follows it when that
/// manager is restarted by its parent (a [restartable
/// subtree](crate::ProcessManager#a-restartable-subtree)): it then controls
/// the child of the new run.
///
/// A child stopped through its handle that is still running when its grace
/// period ends is aborted. Its outcome says [`Outcome::Aborted`], but it is
/// not a failure of its manager: it was asked to stop, and it stopped. (An
/// abort during the manager's own shutdown is reported as a failure.)
///
/// # Example
///
/// ```
/// use procmgr::{ControlMessage, Outcome, ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// let counter = manager.insert(process_fn("counter", async |mut ctx| -> procmgr::Result {
///     let mut total = 0;
///     while let Some(message) = ctx.recv().await {
///         match message {
///             ControlMessage::Custom(n) => total += n.downcast::<u32>().map_err(|_| "not a u32")?,
///             ControlMessage::Reload => total = 0,
///             ControlMessage::Shutdown => break,
///             _ => {}
///         }
///     }
///     println!("{} counted {total}", ctx.path());
///     Ok(())
/// }))?;
/// let run = tokio::spawn(manager.into_future());
///
/// counter.send(2_u32)?;
/// counter.request_reload()?;
/// counter.send(3_u32)?;
/// // Stop this child alone and wait for it; its manager then has no child left.
/// assert!(matches!(counter.shutdown().await, Outcome::Stopped));
/// assert!(counter.is_finished());
/// assert_eq!(counter.send(4_u32).unwrap_err().into_inner(), 4, "it has ended");
/// run.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ChildHandle {
    core: Arc<ChildCore>,
}

impl ChildHandle {
    pub(crate) fn new(core: Arc<ChildCore>) -> Self {
        ChildHandle { core }
    }

    /// The child as it is now: after its manager was restarted by its
    /// parent, the same child in the manager's new run.
    fn core(&self) -> Current<'_> {
        self.core.current()
    }

    /// The child's id, unique within its manager.
    pub fn id(&self) -> u64 {
        self.core().id
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Sends the child a custom message, which it receives as
    /// [`ControlMessage::Custom`](crate::ControlMessage::Custom) from [`Context::recv`](crate::Context::recv).
    ///
    /// Never blocks: messages queue in the child's inbox until it reads them,
    /// without a bound, and the ones it has not read when it ends are dropped
    /// (also those sent in the moment between its return and its manager
    /// noticing). A nested [`ProcessManager`](crate::ProcessManager) drops
    /// every custom message: it has no use for them.
    ///
    /// # Errors
    ///
    /// Hands the message back if the child has already ended.
    pub fn send<T: std::any::Any + Send>(&self, message: T) -> Result<(), SendError<T>> {
        self.core().send(message)
    }

    /// Whether the child has said it is ready with
    /// [`Context::mark_ready`](crate::Context::mark_ready) in its current
    /// attempt, whether or not its readiness counts toward its manager's.
    pub fn is_ready(&self) -> bool {
        self.core().is_ready()
    }

    /// How many times the child has been restarted.
    pub fn restarts(&self) -> u32 {
        self.core().attempt().saturating_sub(1)
    }

    /// How the child ended, or `None` while it runs.
    pub fn outcome(&self) -> Option<Outcome> {
        self.core().end.get().cloned()
    }

    /// Asks the child to shut down gracefully and returns at once; its grace
    /// period starts now. Asking again changes nothing. A child waiting for
    /// its restart ends at once, one waiting for its group when the group
    /// would restart.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the child has already ended.
    pub fn request_shutdown(&self) -> Result<(), ControlError> {
        self.core().request_shutdown()
    }

    /// Asks the child to reload and returns at once; reloads coalesce into
    /// one [`ControlMessage::Reload`](crate::ControlMessage::Reload) while the child is busy.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the child has already ended.
    pub fn request_reload(&self) -> Result<(), ControlError> {
        self.core().request_reload()
    }

    /// Whether the child has ended for good.
    pub fn is_finished(&self) -> bool {
        self.core().is_finished()
    }

    /// Waits until the child has ended for good (a restart is not an end)
    /// and returns how.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: any number of tasks may wait at once.
    pub fn wait(&self) -> impl Future<Output = Outcome> + Send + '_ {
        let core = self.core();
        async move { core.end.wait().await }
    }

    /// Requests a shutdown and waits until the child has ended; returns the
    /// outcome at once if it already had.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the request is made on the first poll, and
    /// dropping the future afterwards does not withdraw it.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{Outcome, ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::new();
    /// let worker = manager.insert(process_fn("worker", |ctx| async move {
    ///     ctx.shutdown_requested().await;
    ///     Ok::<_, std::io::Error>(())
    /// }))?;
    /// let run = tokio::spawn(manager.into_future());
    /// assert!(matches!(worker.shutdown().await, Outcome::Stopped));
    /// run.await??; // its last child ended, so the manager did too
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self) -> Outcome {
        // `Ended` means there is nothing left to stop, and `wait` then
        // returns the outcome at once.
        let _ = self.request_shutdown();
        self.wait().await
    }
}

/// The same methods as the handle's own, for code generic over handles.
impl ProcessControlHandler for ChildHandle {
    fn request_shutdown(&self) -> Result<(), ControlError> {
        ChildHandle::request_shutdown(self)
    }

    fn request_reload(&self) -> Result<(), ControlError> {
        ChildHandle::request_reload(self)
    }

    fn is_finished(&self) -> bool {
        ChildHandle::is_finished(self)
    }

    fn wait(&self) -> impl Future<Output = Outcome> + Send {
        ChildHandle::wait(self)
    }
}

impl fmt::Debug for ChildHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle")
            .field("id", &self.core().id)
            .field("name", &self.core.name)
            .field("outcome", &self.core().end.get())
            .finish()
    }
}
