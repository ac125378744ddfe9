use std::borrow::Cow;
use std::convert::Infallible;

use crate::{Context, ControlMessage, Runnable};

/// A process that does nothing until shutdown is requested; it takes the
/// reloads it is sent and ignores them.
///
/// A manager's run ends when it has no children left; an `IdleProcess` keeps
/// it alive for children inserted later (so does
/// [`ProcessManagerBuilder::keep_running`](crate::ProcessManagerBuilder::keep_running)). It is
/// ready as soon as it starts (it reports readiness), so it never holds up
/// an ordered start or a manager's readiness.
///
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, ProcessManager};
///
/// let manager = ProcessManager::builder().child(IdleProcess).build();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct IdleProcess;

impl Runnable for IdleProcess {
    type Error = Infallible;

    async fn run(&self, mut ctx: Context) -> Result<(), Infallible> {
        ctx.mark_ready();
        // Takes reloads (it has nothing to reload), so that it never holds a
        // tree's reload back (`ManagerHandle::reloaded`).
        while let Some(message) = ctx.recv().await {
            if let ControlMessage::Shutdown = message {
                break;
            }
        }
        Ok(())
    }

    fn reports_ready(&self) -> bool {
        true
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("idle")
    }
}
