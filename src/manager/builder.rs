use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::shared::ManagerShared;
use super::{ChildOptions, DEFAULT_GRACE_PERIOD, ProcessManager};
use crate::runnable::Runnable;

type InsertUpFront = Box<dyn FnOnce(&Arc<ManagerShared>) + Send>;

/// Configures a [`ProcessManager`]; created by [`ProcessManager::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{IdleProcess, ProcessManager};
///
/// let manager = ProcessManager::builder()
///     .name("consumers")
///     .grace_period(Duration::from_secs(10))
///     .child(IdleProcess)
///     .build();
/// assert_eq!(manager.handle().name(), "consumers");
/// ```
#[must_use]
pub struct ProcessManagerBuilder {
    name: Cow<'static, str>,
    grace: Duration,
    auto_cleanup: bool,
    children: Vec<InsertUpFront>,
}

impl ProcessManagerBuilder {
    pub(crate) fn new() -> Self {
        ProcessManagerBuilder {
            name: Cow::Borrowed("manager"),
            grace: DEFAULT_GRACE_PERIOD,
            auto_cleanup: true,
            children: Vec::new(),
        }
    }

    /// The manager's name, the first segment of its children's paths.
    /// Default: `"manager"`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// How long each child may take to stop after shutdown is requested
    /// before it is aborted, unless it has its own
    /// ([`ChildOptions::grace_period`]). Default: [`DEFAULT_GRACE_PERIOD`]
    /// (5 seconds).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Whether the manager forgets a child's record as soon as the child
    /// ends, so that a manager running many short children keeps flat memory.
    /// With `false`, [`ManagerHandle::children`](crate::ManagerHandle::children)
    /// also lists ended children, with their outcome. Default: `true`.
    pub fn auto_cleanup(mut self, enabled: bool) -> Self {
        self.auto_cleanup = enabled;
        self
    }

    /// A child to insert when the manager is built.
    pub fn child<R: Runnable>(self, runnable: R) -> Self {
        self.child_with(runnable, ChildOptions::new())
    }

    /// A child with its own settings to insert when the manager is built.
    pub fn child_with<R: Runnable>(mut self, runnable: R, options: ChildOptions) -> Self {
        self.children.push(Box::new(move |shared| {
            // A manager that has just been built accepts every insert.
            let _ = shared.insert(runnable, options);
        }));
        self
    }

    /// Builds the manager. Needs no tokio runtime; only running it does.
    pub fn build(self) -> ProcessManager {
        let shared = Arc::new(ManagerShared::new(self.name, self.grace, self.auto_cleanup));
        for insert in self.children {
            insert(&shared);
        }
        ProcessManager { shared }
    }
}

impl fmt::Debug for ProcessManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessManagerBuilder")
            .field("name", &self.name)
            .field("grace", &self.grace)
            .field("auto_cleanup", &self.auto_cleanup)
            .field("children", &self.children.len())
            .finish()
    }
}
