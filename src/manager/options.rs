use std::borrow::Cow;
use std::time::Duration;

/// Per-child settings for [`ManagerHandle::insert_with`](crate::ManagerHandle::insert_with).
///
/// A runnable can ask for its own defaults through
/// [`Runnable::child_options`](crate::Runnable::child_options); what
/// `insert_with` sets wins over them.
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
    pub(crate) background: Option<bool>,
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

    /// Whether the child runs in the background: it does not keep the
    /// manager running, and when the manager stops it is asked to stop only
    /// after every other child has ended. Fits helpers that must outlive the
    /// rest, such as [`SignalReceiver`](crate::builtin::SignalReceiver),
    /// which must still hear a second Ctrl-C during a slow shutdown.
    /// Default: `false`.
    #[must_use]
    pub fn background(mut self, background: bool) -> Self {
        self.background = Some(background);
        self
    }

    /// Fills what `self` leaves unset from `defaults`.
    pub(crate) fn or(self, defaults: ChildOptions) -> ChildOptions {
        ChildOptions {
            name: self.name.or(defaults.name),
            grace: self.grace.or(defaults.grace),
            background: self.background.or(defaults.background),
        }
    }
}
