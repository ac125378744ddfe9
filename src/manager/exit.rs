use crate::control::ShutdownReason;

/// How a manager's run ended when no child failed: what
/// [`ProcessManager`](crate::ProcessManager) returns when awaited.
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
