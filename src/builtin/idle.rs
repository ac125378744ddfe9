use std::borrow::Cow;
use std::convert::Infallible;

use crate::{Context, Runnable};

/// A process that does nothing until shutdown is requested.
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

    async fn run(&self, ctx: Context) -> Result<(), Infallible> {
        ctx.mark_ready();
        ctx.shutdown_requested().await;
        Ok(())
    }

    fn reports_ready(&self) -> bool {
        true
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("idle")
    }
}
