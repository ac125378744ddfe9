use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::shared::{ManagerShared, Settings};
use super::{DEFAULT_GRACE_PERIOD, ProcessManager};
use crate::error::{BuildError, InsertErrorKind};
use crate::policy::{ChildOptions, RestartLimit, Strategy};
use crate::runnable::Runnable;

/// Inserts one child given up front; `Err` names it and says why it was
/// refused.
type InsertUpFront =
    Box<dyn FnOnce(&Arc<ManagerShared>) -> Result<(), (String, InsertErrorKind)> + Send>;

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
    settings: Settings,
    children: Vec<InsertUpFront>,
    #[cfg(feature = "signal")]
    signals: bool,
    #[cfg(feature = "systemd")]
    systemd: bool,
}

impl ProcessManagerBuilder {
    pub(crate) fn new() -> Self {
        ProcessManagerBuilder {
            settings: Settings {
                name: Cow::Borrowed("manager"),
                grace: DEFAULT_GRACE_PERIOD,
                auto_cleanup: true,
                strategy: Strategy::OneForOne,
                ordered_start: None,
                ordered_stop: false,
                keep_running: false,
                drain: Duration::ZERO,
                slow_poll: None,
                #[cfg(feature = "metrics")]
                metrics_per_child: false,
                restart_limit: None,
            },
            children: Vec::new(),
            #[cfg(feature = "signal")]
            signals: false,
            #[cfg(feature = "systemd")]
            systemd: false,
        }
    }

    /// Whether the manager handles the operating system's signals: a
    /// [`SignalReceiver`](crate::builtin::SignalReceiver) with its default
    /// mapping (`SIGINT`, `SIGTERM`: graceful shutdown, forced when a second
    /// one comes; `SIGHUP`: reload) is its first child. Default: `false`.
    /// Requires the `signal` feature.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use procmgr::{ProcessManager, process_fn};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::builder().handle_signals(true).build();
    /// manager.insert(process_fn("worker", |ctx| async move {
    ///     ctx.shutdown_requested().await;
    ///     Ok::<_, std::io::Error>(())
    /// }))?;
    /// manager.await?; // Ctrl-C or SIGTERM stops it gracefully
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "signal")]
    pub fn handle_signals(mut self, handle: bool) -> Self {
        self.signals = handle;
        self
    }

    /// Whether the manager tells systemd how its tree is doing: a
    /// [`SystemdNotifier`](crate::builtin::SystemdNotifier) is among its
    /// first children (`READY=1` once the tree is ready, `RELOADING=1` and
    /// `READY=1` around a reload, `STOPPING=1` when shutdown starts,
    /// `WATCHDOG=1` while no heartbeat is stale, `STATUS=`). It sends
    /// nothing where `NOTIFY_SOCKET` is not set. Default: `false`. Requires
    /// the `systemd` feature.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use procmgr::{IdleProcess, ProcessManager};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::builder()
    ///     .notify_systemd(true)
    ///     .child(IdleProcess)
    ///     .build();
    /// manager.await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "systemd")]
    pub fn notify_systemd(mut self, notify: bool) -> Self {
        self.systemd = notify;
        self
    }

    /// The slow-poll threshold of every child that does not set its own
    /// ([`ChildOptions::slow_poll`], which says what it does). It applies to
    /// this manager's children only: a nested manager has its own. Default:
    /// none, polls are not measured.
    pub fn slow_poll(mut self, threshold: Duration) -> Self {
        self.settings.slow_poll = Some(threshold);
        self
    }

    /// Whether the counters of this manager's children
    /// (`procmgr_child_starts_total`, `procmgr_restarts_total`,
    /// `procmgr_failures_total`, `procmgr_slow_polls_total`) carry a `child`
    /// label with the child's name besides `manager`. Off by default: in a
    /// pool of many short children every name is a series of its own, which
    /// most metric stores charge for. With it on, those counters appear with
    /// each child's first event instead of at zero when the manager starts.
    /// Default: `false`. Requires the `metrics` feature.
    #[cfg(feature = "metrics")]
    pub fn metrics_per_child(mut self, per_child: bool) -> Self {
        self.settings.metrics_per_child = per_child;
        self
    }

    /// The manager's name, the first segment of its children's paths.
    /// Default: `"manager"`.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// How long each child may take to stop after shutdown is requested
    /// before it is aborted, unless it has its own
    /// ([`ChildOptions::grace_period`]). Default: [`DEFAULT_GRACE_PERIOD`]
    /// (5 seconds).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.settings.grace = grace;
        self
    }

    /// How long the manager keeps running, reporting itself not ready,
    /// after a graceful shutdown is requested and before it asks its
    /// children to stop: time for a load balancer to see a failing
    /// readiness probe and send no new traffic. Default: zero, no drain.
    ///
    /// During the drain:
    ///
    /// - [`ManagerHandle::is_ready`](crate::ManagerHandle::is_ready) is
    ///   `false` (and stays so until the run ends), and a nested manager
    ///   that drains makes its parents unready too;
    /// - [`ManagerHandle::is_shutdown_requested`](crate::ManagerHandle::is_shutdown_requested)
    ///   is `true`, but the children's own contexts do not see the request
    ///   yet: they run, restart and accept inserts as before;
    /// - a [forced shutdown](crate::ManagerHandle::force_shutdown) (a second
    ///   signal) cuts the drain short and aborts the children at once;
    /// - a failure that stops the tree, the end of a
    ///   [`significant`](crate::ChildOptions::significant) child, or the end
    ///   of the last child cut it short too: the stop begins at once, since
    ///   there is nothing left worth draining for.
    ///
    /// A graceful request from any side drains: a handle, a signal, or the
    /// parent of a nested manager (whose grace period in its parent grows by
    /// its drain period). The drain starts an
    /// [`EventKind::Draining`](crate::EventKind::Draining) event.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use procmgr::{ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let manager = ProcessManager::builder()
    ///     .drain_period(Duration::from_secs(5))
    ///     .build();
    /// manager.insert(process_fn("http", |ctx| async move {
    ///     ctx.shutdown_requested().await; // 5 seconds after the request
    ///     Ok::<_, std::io::Error>(())
    /// }))?;
    /// let handle = manager.handle();
    /// let run = tokio::spawn(manager.into_future());
    /// handle.request_shutdown()?;
    /// run.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn drain_period(mut self, drain: Duration) -> Self {
        self.settings.drain = drain;
        self
    }

    /// Whether the manager forgets a child's record as soon as the child
    /// ends, so that a manager running many short children keeps flat memory.
    /// With `false`, [`ManagerHandle::children`](crate::ManagerHandle::children)
    /// also lists ended children, with their outcome. Default: `true`.
    pub fn auto_cleanup(mut self, enabled: bool) -> Self {
        self.settings.auto_cleanup = enabled;
        self
    }

    /// Which siblings are restarted with a child that is restarted. Default:
    /// [`Strategy::OneForOne`]. Siblings are stopped gracefully, within their
    /// grace period (one at a time with
    /// [`ordered_stop`](ProcessManagerBuilder::ordered_stop)), and once all
    /// have ended they start again after the restarted child's backoff, in
    /// the order they had started: all at once, or with
    /// [`ordered_start`](ProcessManagerBuilder::ordered_start) one at a
    /// time, each once the one before is ready. Siblings without a restart
    /// policy stay stopped, and their end is final: a failure of theirs
    /// escalates, but a significant one does not stop the manager, since
    /// its manager stopped it ([`ChildOptions::significant`]). The group
    /// restart counts as one restart toward the manager's
    /// [`restart_limit`](ProcessManagerBuilder::restart_limit). Background
    /// children are never part of a group.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.settings.strategy = strategy;
        self
    }

    /// Start the children inserted before the run one at a time, in
    /// insertion order, each only once the one before has said it is ready
    /// ([`Context::mark_ready`](crate::Context::mark_ready)) or has ended. A
    /// child not ready within `timeout` is aborted and fails with
    /// [`FailureCause::StartTimeout`](crate::FailureCause::StartTimeout).
    /// Children inserted while the manager runs start at once. A group
    /// restart ([`strategy`](ProcessManagerBuilder::strategy)) starts its
    /// members the same way: those of the ordered start one at a time, in
    /// the order they had started, each within `timeout`; those inserted
    /// while the manager ran at once. Default: off, every child starts at
    /// once.
    pub fn ordered_start(mut self, timeout: Duration) -> Self {
        self.settings.ordered_start = Some(timeout);
        self
    }

    /// At most `limit.restarts()` restarts among all of the manager's
    /// children within any `limit.window()` (OTP's intensity and period);
    /// the restart one more would make stops every child and fails the
    /// manager, so that its parent's policy decides what happens next: a
    /// nested manager with a restart policy is restarted, one without fails
    /// its parent in turn. Default: none, only each child's own limit
    /// ([`ChildOptions::restart_limit`]) applies.
    ///
    /// The failure names the child whose restart was one too many, with
    /// how it last ended, and
    /// [`ChildFailure::exceeded_manager_restart_limit`](crate::ChildFailure::exceeded_manager_restart_limit)
    /// says which limit it was; the manager fails even if that child does
    /// not [`escalate`](ChildOptions::escalate), or ended cleanly under
    /// [`Restart::Always`](crate::Restart::Always)
    /// ([`FailureCause::Exited`](crate::FailureCause::Exited)).
    ///
    /// Every restart counts, clean or not, and a group restart
    /// ([`Strategy::OneForAll`], [`Strategy::RestForOne`]) counts once: for
    /// the child that caused it, not for the siblings restarted with it. A
    /// child whose own limit is exceeded is not restarted, so that does not
    /// count; its own limit is checked first, and its failure is handled as
    /// its own limit says. Each run of the manager starts with no restart
    /// counted.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use procmgr::{ChildOptions, ProcessManager, Restart, RestartLimit, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Two workers that always fail: five restarts among them within a
    /// // minute are fine, the sixth is not.
    /// let manager = ProcessManager::builder()
    ///     .name("workers")
    ///     .restart_limit(RestartLimit::new(5, Duration::from_secs(60)))
    ///     .build();
    /// for name in ["a", "b"] {
    ///     let worker = process_fn(name, |_ctx| async {
    ///         Err::<(), _>(std::io::Error::other("broken"))
    ///     });
    ///     let options = ChildOptions::new()
    ///         .restart(Restart::OnFailure)
    ///         .backoff(procmgr::Backoff::none());
    ///     manager.insert_with(worker, options).unwrap();
    /// }
    /// let error = manager.await.unwrap_err();
    /// let failure = error.failures().unwrap().first();
    /// assert_eq!(
    ///     failure.exceeded_manager_restart_limit(),
    ///     Some(&RestartLimit::new(5, Duration::from_secs(60)))
    /// );
    /// assert!(failure.to_string().ends_with(
    ///     ", and restarting it would exceed its manager's restart limit \
    ///      of 5 restarts within 60s"
    /// ));
    /// # }
    /// ```
    pub fn restart_limit(mut self, limit: RestartLimit) -> Self {
        self.settings.restart_limit = Some(limit);
        self
    }

    /// Stop children one at a time in reverse start order, each stopped (or
    /// aborted after its grace period) before the next is asked, with the
    /// manager's grace period bounding the whole sequence. Default: `false`,
    /// every child is asked at once.
    pub fn ordered_stop(mut self, ordered: bool) -> Self {
        self.settings.ordered_stop = ordered;
        self
    }

    /// Whether the manager runs on when it has no child left, until
    /// shutdown is requested, so that children can be inserted at any time:
    /// a pool scaled down to zero, or a root whose only other children run
    /// in the background. Default: `false`, the run ends when its last
    /// (non-background) child has ended.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ProcessManager, process_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = ProcessManager::builder().name("pool").keep_running(true).build();
    /// let handle = pool.handle();
    /// let run = tokio::spawn(pool.into_future());
    /// let job = handle.insert(process_fn("job", |_ctx| async { Ok::<_, std::io::Error>(()) }))?;
    /// job.wait().await;
    /// // Empty, and still running:
    /// handle.insert(process_fn("next", |_ctx| async { Ok::<_, std::io::Error>(()) }))?;
    /// handle.shutdown().await;
    /// run.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn keep_running(mut self, keep_running: bool) -> Self {
        self.settings.keep_running = keep_running;
        self
    }

    /// A child to insert when the manager is built, by the rules of
    /// [`insert`](ProcessManager::insert): a repeated name gets a suffix,
    /// and a taken [exact name](ChildOptions::exact_name) makes
    /// [`try_build`](Self::try_build) fail.
    pub fn child<R: Runnable>(self, runnable: R) -> Self {
        self.child_with(runnable, ChildOptions::new())
    }

    /// A child with its own settings to insert when the manager is built;
    /// see [`child`](Self::child).
    pub fn child_with<R: Runnable>(mut self, runnable: R, options: ChildOptions) -> Self {
        self.children.push(Box::new(move |shared| {
            shared
                .insert(runnable, options)
                .map(drop)
                .map_err(|refused| (refused.child().to_owned(), refused.kind()))
        }));
        self
    }

    /// Builds the manager. Needs no tokio runtime; only running it does.
    ///
    /// # Panics
    ///
    /// If a child given up front asks for an
    /// [exact name](ChildOptions::exact_name) that one before it has, which
    /// [`insert`](ProcessManager::insert) would refuse. [`try_build`](Self::try_build) returns that as an
    /// error instead.
    pub fn build(self) -> ProcessManager {
        match self.try_build() {
            Ok(manager) => manager,
            Err(error) => panic!("{error}"),
        }
    }

    /// Builds the manager, or says which child given up front
    /// [`insert`](ProcessManager::insert) would refuse.
    ///
    /// # Errors
    ///
    /// [`BuildError`] with [`InsertErrorKind::DuplicateName`] if a child
    /// asks for an [exact name](ChildOptions::exact_name) that one before
    /// it has. Names that are not exact never fail: a repeated one gets a
    /// suffix.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ChildOptions, IdleProcess, InsertErrorKind, ProcessManager};
    ///
    /// let refused = ProcessManager::builder()
    ///     .name("api")
    ///     .child_with(IdleProcess, ChildOptions::new().name("http"))
    ///     .child_with(IdleProcess, ChildOptions::new().name("http").exact_name(true))
    ///     .try_build()
    ///     .unwrap_err();
    /// assert_eq!(refused.kind(), InsertErrorKind::DuplicateName);
    /// assert_eq!(refused.child(), "http");
    /// ```
    pub fn try_build(self) -> Result<ProcessManager, BuildError> {
        let name = self.settings.name.to_string();
        let shared = Arc::new(ManagerShared::new(self.settings));
        #[cfg(feature = "signal")]
        if self.signals {
            let receiver =
                crate::builtin::SignalReceiver::new(super::ManagerHandle::new(Arc::clone(&shared)));
            shared
                .insert(receiver, ChildOptions::new())
                .map_err(|refused| {
                    BuildError::new(name.clone(), refused.child().to_owned(), refused.kind())
                })?;
        }
        #[cfg(feature = "systemd")]
        if self.systemd {
            let notifier = crate::builtin::SystemdNotifier::new(super::ManagerHandle::new(
                Arc::clone(&shared),
            ));
            shared
                .insert(notifier, ChildOptions::new())
                .map_err(|refused| {
                    BuildError::new(name.clone(), refused.child().to_owned(), refused.kind())
                })?;
        }
        for insert in self.children {
            insert(&shared).map_err(|(child, kind)| BuildError::new(name.clone(), child, kind))?;
        }
        Ok(ProcessManager { shared })
    }
}

impl fmt::Debug for ProcessManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessManagerBuilder")
            .field("settings", &self.settings)
            .field("children", &self.children.len())
            .finish()
    }
}
