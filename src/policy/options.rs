use std::borrow::Cow;
use std::time::Duration;

use super::{Backoff, Restart, RestartLimit};

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
    pub(crate) exact_name: Option<bool>,
    pub(crate) grace: Option<Duration>,
    pub(crate) background: Option<bool>,
    pub(crate) restart: Option<Restart>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) restart_limit: Option<RestartLimit>,
    pub(crate) significant: Option<bool>,
    pub(crate) escalate: Option<bool>,
    pub(crate) reports_ready: Option<bool>,
    pub(crate) heartbeat_timeout: Option<Duration>,
    pub(crate) slow_poll: Option<Duration>,
}

impl ChildOptions {
    /// The defaults: the runnable's own name and the manager's grace period.
    pub fn new() -> Self {
        ChildOptions::default()
    }

    /// The child's name instead of [`Runnable::name`](crate::Runnable::name).
    /// Like every name, it gets a suffix when a live sibling has it (see
    /// [`ManagerHandle::insert`](crate::ManagerHandle::insert)), unless it
    /// is an [`exact_name`](ChildOptions::exact_name).
    #[must_use]
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether the child must have exactly its name: when a live sibling
    /// has it, the insert is refused with
    /// [`InsertErrorKind::DuplicateName`](crate::InsertErrorKind::DuplicateName)
    /// (handing the runnable back) instead of suffixing it. For a child that
    /// other code finds by name. Default: `false`.
    ///
    /// # Example
    ///
    /// ```
    /// use procmgr::{ChildOptions, IdleProcess, InsertErrorKind, ProcessManager};
    ///
    /// let manager = ProcessManager::new();
    /// let exact = ChildOptions::new().name("db").exact_name(true);
    /// manager.insert_with(IdleProcess, exact.clone())?;
    /// let refused = manager.insert_with(IdleProcess, exact).unwrap_err();
    /// assert_eq!(refused.kind(), InsertErrorKind::DuplicateName);
    /// # Ok::<_, procmgr::InsertError<IdleProcess>>(())
    /// ```
    #[must_use]
    pub fn exact_name(mut self, exact: bool) -> Self {
        self.exact_name = Some(exact);
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

    /// When the child is started again after it ends. Default:
    /// [`Restart::Never`]. A restarted child keeps its id, name, path and
    /// handle; [`Context::attempt`](crate::Context::attempt) says which
    /// attempt it is. Custom messages it did not read carry over to the next
    /// attempt; reloads requested before it restarted do not (it starts
    /// from fresh configuration). A stop through its handle is final: it is
    /// not restarted, even while it waits for a restart.
    ///
    /// A nested [`ProcessManager`](crate::ProcessManager) restarts like any
    /// child: its new run starts the children it was built with, and the
    /// handles into it follow (see [a restartable
    /// subtree](crate::ProcessManager#a-restartable-subtree)):
    ///
    /// ```
    /// use procmgr::{ChildOptions, IdleProcess, ProcessManager, Restart};
    ///
    /// let consumers = ProcessManager::builder().name("consumers").build();
    /// consumers.insert(IdleProcess)?;
    /// let root = ProcessManager::new();
    /// root.insert_with(consumers, ChildOptions::new().restart(Restart::OnFailure))?;
    /// # Ok::<_, Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = Some(restart);
        self
    }

    /// The delay before a restart after a failure. Default:
    /// [`Backoff::default`] (100 ms doubling to 30 s, plus up to half again
    /// of jitter, never beyond 30 s).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// How many restarts are allowed within a window before the child is
    /// given up on; then its failure is handled as if it had no restart
    /// policy (see [`escalate`](ChildOptions::escalate)). Default:
    /// [`RestartLimit::default`] (5 within 60 seconds).
    ///
    /// The limit is the child's own, not shared with its siblings, and
    /// restarts a strategy imposes on a sibling do not count toward the
    /// sibling's. OTP's per-supervisor intensity is
    /// [`ProcessManagerBuilder::restart_limit`](crate::ProcessManagerBuilder::restart_limit);
    /// both can be set, and this one is checked first. `RestartLimit::new(0, _)`
    /// never restarts; a zero window never gives up. Under
    /// [`Restart::Always`], clean exits count too: a child past its limit
    /// with a clean exit simply ends (`Completed`), which is a failure only
    /// in that it no longer runs.
    #[must_use]
    pub fn restart_limit(mut self, limit: RestartLimit) -> Self {
        self.restart_limit = Some(limit);
        self
    }

    /// Whether the child's end, even with `Ok`, stops the manager when the
    /// child is not restarted: the main server whose exit should end the
    /// program (OTP's `significant` child under `auto_shutdown =>
    /// any_significant`). Default: `false`.
    ///
    /// Which ends count:
    ///
    /// - It ends by itself (returns, fails, panics, misses its start or
    ///   heartbeat timeout) and is not restarted: the manager stops, with
    ///   [`ShutdownReason::ChildEnded`](crate::ShutdownReason::ChildEnded).
    /// - Its manager stops it: when the manager stops (for any reason), or
    ///   when a group restart ([`Strategy::OneForAll`](crate::Strategy::OneForAll),
    ///   [`Strategy::RestForOne`](crate::Strategy::RestForOne)) stops it,
    ///   whether the group then restarts it or, without a restart policy,
    ///   it stays stopped. This does not stop the manager, as in OTP.
    /// - It is stopped through its own handle
    ///   ([`ChildHandle::request_shutdown`](crate::ChildHandle::request_shutdown)):
    ///   that is its end as far as its manager is concerned, so the
    ///   manager stops, whether the child was running, waiting for its
    ///   restart or held for its group's. This differs from OTP, where
    ///   `terminate_child` does not trigger an automatic shutdown; to stop
    ///   the whole manager, stop it through its own handle instead.
    #[must_use]
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = Some(significant);
        self
    }

    /// Whether the child's failure, when it is not restarted (no policy, or
    /// its restart limit exceeded), stops the manager and becomes the run's
    /// error. With `false` the failure is only the child's outcome and its
    /// siblings carry on. Default: `true`.
    #[must_use]
    pub fn escalate(mut self, escalate: bool) -> Self {
        self.escalate = Some(escalate);
        self
    }

    /// Whether the child says when it is ready
    /// ([`Context::mark_ready`](crate::Context::mark_ready)) and its manager
    /// counts as ready only once it has, in its current attempt: see
    /// [`ManagerHandle::is_ready`](crate::ManagerHandle::is_ready). An
    /// override for one insert: a process declares this itself through
    /// [`Runnable::reports_ready`](crate::Runnable::reports_ready) (as a
    /// nested manager, [`IdleProcess`](crate::IdleProcess) and
    /// `SignalReceiver` do) or
    /// [`ProcessFn::reporting_ready`](crate::ProcessFn::reporting_ready).
    /// With `false`, the child may still call `mark_ready` (its handle sees
    /// it) without the debug assertion that catches a forgotten
    /// declaration. Default: what the process declares.
    #[must_use]
    pub fn reports_ready(mut self, reports: bool) -> Self {
        self.reports_ready = Some(reports);
        self
    }

    /// How long the child may go without a
    /// [`Context::heartbeat`](crate::Context::heartbeat) before it counts as
    /// wedged: it is aborted and fails with
    /// [`FailureCause::Wedged`](crate::FailureCause::Wedged), and its restart
    /// policy applies. Each attempt starts with a fresh heartbeat. Default:
    /// none, no liveness check.
    #[must_use]
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// Measure each poll of the child's future and report one that takes
    /// longer than `threshold`: a child that blocks its thread (no
    /// `.await` for a long time) stalls the other tasks on that thread and
    /// cannot be aborted until the poll returns.
    ///
    /// A slow poll is published as [`EventKind::SlowPoll`](crate::EventKind::SlowPoll),
    /// logged as a warning (features `tracing`, `log`), counted in
    /// `procmgr_slow_polls_total` (feature `metrics`), and shown by the
    /// tree view ([`ChildInfo::slow_polls`](crate::ChildInfo::slow_polls),
    /// and [`ChildInfo::blocking`](crate::ChildInfo::blocking) while such a
    /// poll runs). When the manager aborts the child while a poll over the
    /// threshold holds its thread, as at the end of a grace period, the
    /// failure says so ([`ChildFailure::blocking_poll`](crate::ChildFailure::blocking_poll)).
    ///
    /// The check wraps the future's poll in the child's own task: two
    /// clock reads per poll, no task of its own (see BENCHMARKS.md for its
    /// cost). Default: the manager's
    /// ([`ProcessManagerBuilder::slow_poll`](crate::ProcessManagerBuilder::slow_poll)),
    /// none unless set there.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use procmgr::{ChildOptions, IdleProcess, ProcessManager};
    ///
    /// let manager = ProcessManager::new();
    /// manager.insert_with(IdleProcess, ChildOptions::new().slow_poll(Duration::from_millis(10)))?;
    /// # Ok::<_, procmgr::InsertError<IdleProcess>>(())
    /// ```
    #[must_use]
    pub fn slow_poll(mut self, threshold: Duration) -> Self {
        self.slow_poll = Some(threshold);
        self
    }

    /// Fills what `self` leaves unset from `defaults`.
    pub(crate) fn or(self, defaults: ChildOptions) -> ChildOptions {
        ChildOptions {
            name: self.name.or(defaults.name),
            exact_name: self.exact_name.or(defaults.exact_name),
            grace: self.grace.or(defaults.grace),
            background: self.background.or(defaults.background),
            restart: self.restart.or(defaults.restart),
            backoff: self.backoff.or(defaults.backoff),
            restart_limit: self.restart_limit.or(defaults.restart_limit),
            significant: self.significant.or(defaults.significant),
            escalate: self.escalate.or(defaults.escalate),
            reports_ready: self.reports_ready.or(defaults.reports_ready),
            heartbeat_timeout: self.heartbeat_timeout.or(defaults.heartbeat_timeout),
            slow_poll: self.slow_poll.or(defaults.slow_poll),
        }
    }
}
