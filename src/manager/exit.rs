use crate::control::ShutdownReason;

/// How a manager's run ended when no child failed: what
/// [`ProcessManager`](crate::ProcessManager) returns when awaited.
///
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, ProcessManager, ShutdownReason};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// manager.insert(IdleProcess)?;
/// let handle = manager.handle();
/// tokio::spawn(async move { handle.shutdown().await });
/// let exit = manager.await?;
/// assert_eq!(exit.shutdown_reason(), Some(&ShutdownReason::Requested));
///
/// // A manager whose children all end by themselves has no shutdown reason.
/// let manager = ProcessManager::new();
/// let exit = manager.await?;
/// assert_eq!(exit.shutdown_reason(), None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Exit {
    shutdown_reason: Option<ShutdownReason>,
}

impl Exit {
    pub(crate) fn new(shutdown_reason: Option<ShutdownReason>) -> Self {
        Exit { shutdown_reason }
    }

    /// Why shutdown was requested, or `None` if every child ended by itself.
    pub fn shutdown_reason(&self) -> Option<&ShutdownReason> {
        self.shutdown_reason.as_ref()
    }
}
