use std::fmt;
use std::future::Future;

use super::Outcome;
use crate::error::ControlError;

/// The control surface every handle offers: ask a process to stop or reload,
/// and wait for it to end.
///
/// Both [`ChildHandle`](crate::ChildHandle) (one child) and
/// [`ManagerHandle`](crate::ManagerHandle) (a manager and its whole subtree)
/// implement it. Requests never block and never panic; once the process has
/// ended they return [`ControlError::Ended`]. Each handle has these methods
/// of its own too, so calling them needs no import; the trait is for code
/// generic over handles. The trait is sealed: only procmgr's handles implement it, so that it can
/// grow without breaking anyone.
///
/// # Example
///
/// ```
/// use procmgr::{ProcessControlHandler, Outcome};
///
/// async fn stop_all<H: ProcessControlHandler>(handles: &[H]) -> Vec<Outcome> {
///     for handle in handles {
///         // A process that has already ended needs no request.
///         let _ = handle.request_shutdown();
///     }
///     let mut outcomes = Vec::new();
///     for handle in handles {
///         outcomes.push(handle.wait().await);
///     }
///     outcomes
/// }
/// ```
pub trait ProcessControlHandler:
    sealed::Sealed + Clone + Send + Sync + fmt::Debug + 'static
{
    /// Asks the process to shut down gracefully and returns at once.
    ///
    /// Asking again, from this handle or any other, changes nothing: it is the
    /// same single shutdown. If the process does not stop within its grace
    /// period, its manager aborts it.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the process has already ended.
    fn request_shutdown(&self) -> Result<(), ControlError>;

    /// Asks the process to reload and returns at once.
    ///
    /// Reloads coalesce: a process that is busy when several arrive sees one
    /// [`ControlMessage::Reload`](crate::ControlMessage::Reload) the next time
    /// it looks, never none.
    ///
    /// # Errors
    ///
    /// [`ControlError::Ended`] if the process has already ended.
    fn request_reload(&self) -> Result<(), ControlError>;

    /// Whether the process has ended.
    fn is_finished(&self) -> bool;

    /// Waits until the process has ended and returns how it ended.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: dropping the future loses nothing, and any
    /// number of tasks may wait at once.
    fn wait(&self) -> impl Future<Output = Outcome> + Send;

    /// Requests a shutdown and waits until the process has ended.
    ///
    /// Returns at once with the outcome if the process had already ended.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the request is made on the first poll, and
    /// dropping the future afterwards does not withdraw it.
    fn shutdown(&self) -> impl Future<Output = Outcome> + Send {
        async move {
            // `Ended` means there is nothing left to stop, and `wait` then
            // returns the outcome at once.
            let _ = self.request_shutdown();
            self.wait().await
        }
    }
}

pub(crate) mod sealed {
    /// Keeps [`ProcessControlHandler`](super::ProcessControlHandler) to
    /// procmgr's own handles.
    pub trait Sealed {}

    impl Sealed for crate::ChildHandle {}
    impl Sealed for crate::ManagerHandle {}
}
