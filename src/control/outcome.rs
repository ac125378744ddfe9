use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// How a process ended.
///
/// # Example
///
/// ```
/// use procmgr::{Outcome, ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// let done = manager.insert(process_fn("done", async |_ctx| -> procmgr::Result { Ok(()) }))?;
/// let server = manager.insert(process_fn("server", async |ctx| -> procmgr::Result {
///     ctx.shutdown_requested().await;
///     Ok(())
/// }))?;
/// let run = tokio::spawn(manager.into_future());
///
/// assert!(matches!(done.wait().await, Outcome::Completed));
/// let outcome = server.shutdown().await;
/// assert!(matches!(outcome, Outcome::Stopped));
/// assert!(outcome.is_success());
/// assert_eq!(outcome.to_string(), "stopped");
/// run.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// It returned `Ok` without being asked to stop.
    Completed,
    /// It returned `Ok` after shutdown was requested.
    Stopped,
    /// It returned this error.
    Failed(Arc<dyn Error + Send + Sync + 'static>),
    /// It panicked with this message.
    Panicked(String),
    /// It was aborted: it was still running when its grace period ended, or
    /// the manager that owned it was dropped.
    Aborted,
}

impl Outcome {
    /// Whether the process ended by returning `Ok`.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Completed | Outcome::Stopped)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::Stopped => f.write_str("stopped"),
            Outcome::Failed(error) => write!(f, "failed: {error}"),
            Outcome::Panicked(message) => write!(f, "panicked: {message}"),
            Outcome::Aborted => f.write_str("aborted"),
        }
    }
}
