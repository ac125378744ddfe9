use std::borrow::Cow;
use std::time::Duration;

/// Per-child settings for [`ManagerHandle::insert_with`](crate::ManagerHandle::insert_with).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{ChildOptions, IdleProcess, ProcessManager};
///
/// let manager = ProcessManager::new();
/// let handle = manager.insert_with(
///     IdleProcess,
///     ChildOptions::new().name("slow-drain").grace_period(Duration::from_secs(30)),
/// )?;
/// assert_eq!(handle.name(), "slow-drain");
/// # Ok::<_, procmgr::InsertError<IdleProcess>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    pub(crate) name: Option<Cow<'static, str>>,
    pub(crate) grace: Option<Duration>,
}

impl ChildOptions {
    /// The defaults: the runnable's own name and the manager's grace period.
    pub fn new() -> Self {
        ChildOptions::default()
    }

    /// The child's name instead of [`Runnable::name`](crate::Runnable::name).
    #[must_use]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long the child may take to stop after shutdown is requested before
    /// it is aborted. Default: the manager's grace period.
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }
}
