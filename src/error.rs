//! The error types: what a manager's run returns, and what misuse of a handle
//! or an insert reports.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::control::{ShutdownReason, Signal};
use crate::policy::RestartLimit;

/// Why a [`ProcessManager`](crate::ProcessManager) run did not end cleanly.
///
/// # Reporting
///
/// Its `Debug` output is a report for people, the way `anyhow` prints its
/// errors, so that a `main` returning `Result<_, RunError>` or
/// `Result<_, BoxError>` prints something readable when it ends on a
/// failure: the first failure with the child's path, the chain of its
/// causes (`Caused by:`), then every later failure on one line each. The
/// alternate form, `{:#?}`, is the usual structural dump. `Display` is one
/// line, with the causes in [`source`](Error::source).
///
/// ```text
/// Error: process service/ingest failed (and 1 later failure)
///
/// Caused by:
///     0: cannot reach the queue
///     1: connection refused
///
/// Later failures:
///     process service/report was aborted: SIGINT forced the shutdown
/// ```
///
/// # Exit status
///
/// [`exit_code`](RunError::exit_code) turns it into the process's exit
/// status: 1 for a failure, 3 for a forced shutdown (a run that returns
/// `Ok` exits with 0).
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = ProcessManager::builder().name("service").build();
/// manager.insert(process_fn("ingest", |_ctx| async {
///     Err::<(), _>(std::io::Error::other("connection refused"))
/// }))?;
/// let error = manager.await.expect_err("ingest failed");
/// let failure = error.failures().expect("a child failed").first();
/// assert_eq!(failure.path(), "service/ingest");
/// assert_eq!(
///     format!("{error:?}"),
///     "process service/ingest failed\n\nCaused by:\n    connection refused"
/// );
/// assert_eq!(error.exit_code(), std::process::ExitCode::FAILURE);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum RunError {
    /// The manager runs already, or it ran as the root of a tree: a manager
    /// runs once at a time, and only a nested manager whose run has ended
    /// runs again (its parent restarts it).
    AlreadyStarted,
    /// At least one child failed. The first failure stopped the tree; the
    /// rest happened while it stopped.
    ChildFailed(ChildFailures),
}

impl RunError {
    /// The failures, when children failed.
    pub fn failures(&self) -> Option<&ChildFailures> {
        match self {
            RunError::ChildFailed(failures) => Some(failures),
            RunError::AlreadyStarted => None,
        }
    }

    /// The process exit status for this error, for a `main` that returns
    /// [`ExitCode`]:
    ///
    /// | the run | status |
    /// | --- | --- |
    /// | returned `Ok`: every child completed, or stopped within its grace period after a request or a signal | 0 (no `RunError`) |
    /// | a child failed (returned `Err`, panicked, was aborted after its grace period, timed out or wedged), or the manager was started twice | 1 |
    /// | a forced shutdown aborted a child ([`FailureCause::Forced`]), such as a second `SIGINT` during a slow shutdown | 3 |
    ///
    /// The first failure decides: a child that fails, after which a forced
    /// shutdown aborts its slow siblings, exits with 1. Status 2 is left to
    /// command-line usage errors, which clap and LSB init scripts give it.
    /// A `main` that returns `Err(RunError)` instead exits with 1 whatever
    /// the failure, which is the standard library's rule.
    ///
    /// # Example
    ///
    /// ```
    /// use std::process::ExitCode;
    /// use procmgr::ProcessManager;
    ///
    /// #[tokio::main]
    /// async fn main() -> ExitCode {
    ///     let manager = ProcessManager::builder().name("service").build();
    ///     // ... insert the service's processes ...
    ///     match manager.await {
    ///         Ok(_) => ExitCode::SUCCESS,
    ///         Err(error) => {
    ///             eprintln!("Error: {error:?}");
    ///             error.exit_code()
    ///         }
    ///     }
    /// }
    /// ```
    pub fn exit_code(&self) -> ExitCode {
        match self {
            RunError::ChildFailed(failures)
                if matches!(failures.first().cause(), FailureCause::Forced { .. }) =>
            {
                ExitCode::from(3)
            }
            RunError::ChildFailed(_) | RunError::AlreadyStarted => ExitCode::FAILURE,
        }
    }
}

/// The report described under [Reporting](RunError#reporting); `{:#?}`
/// gives the structure instead.
impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return match self {
                RunError::AlreadyStarted => f.write_str("AlreadyStarted"),
                RunError::ChildFailed(failures) => {
                    f.debug_tuple("ChildFailed").field(failures).finish()
                }
            };
        }
        write!(f, "{self}")?;
        let Some(failures) = self.failures() else {
            return Ok(());
        };
        let first: Vec<&dyn Error> = causes(failures.first()).collect();
        if !first.is_empty() {
            f.write_str("\n\nCaused by:")?;
            for (n, cause) in first.iter().enumerate() {
                f.write_str("\n    ")?;
                let indent = if first.len() > 1 {
                    write!(f, "{n}: ")?;
                    "       "
                } else {
                    "    "
                };
                write_indented(f, &cause.to_string(), indent)?;
            }
        }
        if !failures.later().is_empty() {
            f.write_str("\n\nLater failures:")?;
            for failure in failures.later() {
                f.write_str("\n    ")?;
                let mut line = failure.to_string();
                for cause in causes(failure) {
                    line.push_str(": ");
                    line.push_str(&cause.to_string());
                }
                write_indented(f, &line, "    ")?;
            }
        }
        Ok(())
    }
}

/// The chain of errors under a failure, nearest first.
fn causes(failure: &ChildFailure) -> impl Iterator<Item = &(dyn Error + 'static)> {
    std::iter::successors(failure.source(), |&error| error.source())
}

/// Writes `text`, its lines after the first indented by `indent`.
fn write_indented(f: &mut fmt::Formatter<'_>, text: &str, indent: &str) -> fmt::Result {
    for (n, line) in text.lines().enumerate() {
        if n > 0 {
            write!(f, "\n{indent}")?;
        }
        f.write_str(line)?;
    }
    Ok(())
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::AlreadyStarted => f.write_str("process manager was already started"),
            RunError::ChildFailed(failures) => {
                write!(f, "{}", failures.first())?;
                match failures.later().len() {
                    0 => Ok(()),
                    1 => f.write_str(" (and 1 later failure)"),
                    n => write!(f, " (and {n} later failures)"),
                }
            }
        }
    }
}

impl Error for RunError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RunError::ChildFailed(failures) => failures.first().source(),
            RunError::AlreadyStarted => None,
        }
    }
}

/// The failures of one manager run, first one first.
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::builder().name("root").build();
/// manager.insert(process_fn("a", async |_ctx| -> procmgr::Result { Err("a broke".into()) }))?;
/// manager.insert(process_fn("b", async |ctx| -> procmgr::Result {
///     ctx.shutdown_requested().await;
///     Err("b broke while stopping".into())
/// }))?;
/// let error = manager.await.unwrap_err();
/// let failures = error.failures().expect("children failed");
/// let paths: Vec<_> = failures.iter().map(|failure| failure.path()).collect();
/// assert_eq!(paths, ["root/a", "root/b"]);
/// assert_eq!(error.to_string(), "process root/a failed (and 1 later failure)");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChildFailures {
    first: ChildFailure,
    later: Vec<ChildFailure>,
    shutdown_reason: Option<ShutdownReason>,
}

impl ChildFailures {
    pub(crate) fn new(first: ChildFailure) -> Self {
        ChildFailures {
            first,
            later: Vec::new(),
            shutdown_reason: None,
        }
    }

    pub(crate) fn set_shutdown_reason(&mut self, reason: Option<ShutdownReason>) {
        self.shutdown_reason = reason;
    }

    /// Why the manager shut down: usually the first failure, but a failure
    /// can also happen during a shutdown requested for another reason, such
    /// as a signal, or be the abort of a forced shutdown.
    pub fn shutdown_reason(&self) -> Option<&ShutdownReason> {
        self.shutdown_reason.as_ref()
    }

    pub(crate) fn push(&mut self, failure: ChildFailure) {
        self.later.push(failure);
    }

    /// The failure that stopped the tree.
    pub fn first(&self) -> &ChildFailure {
        &self.first
    }

    /// Failures after the first, in the order the manager saw them.
    pub fn later(&self) -> &[ChildFailure] {
        &self.later
    }

    /// All failures, first one first.
    pub fn iter(&self) -> impl Iterator<Item = &ChildFailure> {
        std::iter::once(&self.first).chain(&self.later)
    }
}

/// One child that failed, with its full path in the tree.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use procmgr::{Backoff, ChildOptions, ProcessManager, Restart, RestartLimit, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let limit = RestartLimit::new(2, Duration::from_secs(60));
/// let manager = ProcessManager::builder().name("root").build();
/// manager.insert_with(
///     process_fn("flaky", async |_ctx| -> procmgr::Result { Err("flaked".into()) }),
///     ChildOptions::new()
///         .restart(Restart::OnFailure)
///         .backoff(Backoff::none())
///         .restart_limit(limit),
/// )?;
/// let error = manager.await.unwrap_err();
/// let failure = error.failures().expect("a child failed").first();
/// assert_eq!(failure.path(), "root/flaky");
/// assert_eq!(failure.exceeded_restart_limit(), Some(&limit));
/// assert_eq!(failure.attempt(), 3, "the first run and two restarts");
/// assert_eq!(
///     failure.to_string(),
///     "process root/flaky failed (attempt 3), more often than its restart limit of 2 restarts within 60s",
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ChildFailure {
    path: String,
    id: u64,
    cause: FailureCause,
    exceeded: Option<Exceeded>,
    attempt: u32,
    blocking_poll: Option<Duration>,
}

/// Which restart limit a failure exceeded.
#[derive(Debug, Clone, Copy)]
enum Exceeded {
    /// The child's own ([`ChildOptions::restart_limit`](crate::ChildOptions::restart_limit)).
    Child(RestartLimit),
    /// Its manager's, over all of its children
    /// ([`ProcessManagerBuilder::restart_limit`](crate::ProcessManagerBuilder::restart_limit)).
    Manager(RestartLimit),
}

impl ChildFailure {
    pub(crate) fn new(path: String, id: u64, cause: FailureCause) -> Self {
        ChildFailure {
            path,
            id,
            cause,
            exceeded: None,
            attempt: 1,
            blocking_poll: None,
        }
    }

    pub(crate) fn in_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// Which attempt of the child failed: 1 for its first run, one more for
    /// each restart. A restartable subtree's restarts show here, at the
    /// subtree's path, and in the failure's message (`(attempt 3)`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn blocked(mut self, blocking_poll: Option<Duration>) -> Self {
        self.blocking_poll = blocking_poll;
        self
    }

    /// When the manager aborted the child (its grace period was over, or it
    /// was wedged), one poll of its future had blocked its thread for this
    /// long, over its slow-poll threshold: the child did not yield, so the
    /// abort had to wait for that poll to return. Known only for children
    /// with a threshold ([`ChildOptions::slow_poll`](crate::ChildOptions::slow_poll)).
    pub fn blocking_poll(&self) -> Option<Duration> {
        self.blocking_poll
    }

    pub(crate) fn exceeding(mut self, limit: RestartLimit) -> Self {
        self.exceeded = Some(Exceeded::Child(limit));
        self
    }

    pub(crate) fn exceeding_manager(mut self, limit: RestartLimit) -> Self {
        self.exceeded = Some(Exceeded::Manager(limit));
        self
    }

    /// The child's own restart limit, if it was given up on because it
    /// failed too often; [`cause`](ChildFailure::cause) is its last failure.
    pub fn exceeded_restart_limit(&self) -> Option<&RestartLimit> {
        match &self.exceeded {
            Some(Exceeded::Child(limit)) => Some(limit),
            Some(Exceeded::Manager(_)) | None => None,
        }
    }

    /// The restart limit of the child's manager (the one whose name ends
    /// the path before the child's), if restarting this child would have
    /// been one restart too many among all of that manager's children:
    /// the manager stopped every child and failed with this failure.
    /// [`cause`](ChildFailure::cause) is how the child last ended, which
    /// is [`FailureCause::Exited`] if it ended without failing (under
    /// [`Restart::Always`](crate::Restart::Always)).
    pub fn exceeded_manager_restart_limit(&self) -> Option<&RestartLimit> {
        match &self.exceeded {
            Some(Exceeded::Manager(limit)) => Some(limit),
            Some(Exceeded::Child(_)) | None => None,
        }
    }

    /// The child's path from the root manager, such as `root/consumers/kafka-0`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The child's id in the manager that ran it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How the child failed.
    pub fn cause(&self) -> &FailureCause {
        &self.cause
    }
}

impl fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            FailureCause::Error(_) => write!(f, "process {} failed", self.path)?,
            FailureCause::Panic(message) => {
                write!(f, "process {} panicked: {message}", self.path)?;
            }
            FailureCause::Aborted { grace } => write!(
                f,
                "process {} was aborted after a grace period of {grace:?}",
                self.path
            )?,
            FailureCause::Forced {
                signal: Some(signal),
            } => write!(
                f,
                "process {} was aborted: {signal} forced the shutdown",
                self.path
            )?,
            FailureCause::Forced { signal: None } => {
                write!(
                    f,
                    "process {} was aborted: the shutdown was forced",
                    self.path
                )?;
            }
            FailureCause::StartTimeout { timeout } => write!(
                f,
                "process {} was not ready within its start timeout of {timeout:?}",
                self.path
            )?,
            FailureCause::Wedged { timeout } => write!(
                f,
                "process {} was wedged: no heartbeat for {timeout:?}",
                self.path
            )?,
            FailureCause::Exited => write!(f, "process {} exited", self.path)?,
        }
        if self.attempt > 1 {
            write!(f, " (attempt {})", self.attempt)?;
        }
        match &self.exceeded {
            Some(Exceeded::Child(limit)) => {
                write!(f, ", more often than its restart limit of {limit}")?;
            }
            Some(Exceeded::Manager(limit)) => write!(
                f,
                ", and restarting it would exceed its manager's restart limit of {limit}"
            )?,
            None => {}
        }
        match self.blocking_poll {
            Some(blocked) => write!(
                f,
                "; it did not yield: one poll had blocked its thread for {blocked:?}"
            ),
            None => Ok(()),
        }
    }
}

impl Error for ChildFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.cause {
            FailureCause::Error(error) => Some(&**error),
            FailureCause::Panic(_)
            | FailureCause::Aborted { .. }
            | FailureCause::Forced { .. }
            | FailureCause::StartTimeout { .. }
            | FailureCause::Wedged { .. }
            | FailureCause::Exited => None,
        }
    }
}

/// How a child failed.
///
/// # Example
///
/// ```
/// use procmgr::{FailureCause, ProcessManager, process_fn};
///
/// fn describe(cause: &FailureCause) -> String {
///     match cause {
///         FailureCause::Error(error) => format!("returned an error: {error}"),
///         FailureCause::Panic(message) => format!("panicked: {message}"),
///         FailureCause::Aborted { grace } => format!("ignored shutdown for {grace:?}"),
///         FailureCause::StartTimeout { timeout } => format!("not ready within {timeout:?}"),
///         FailureCause::Wedged { timeout } => format!("no heartbeat for {timeout:?}"),
///         _ => "failed".to_owned(),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// manager.insert(process_fn("buggy", async |_ctx| -> procmgr::Result {
///     panic!("index out of bounds")
/// }))?;
/// let error = manager.await.unwrap_err();
/// let cause = error.failures().expect("a child failed").first().cause();
/// assert_eq!(describe(cause), "panicked: index out of bounds");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FailureCause {
    /// It returned this error.
    Error(Arc<dyn Error + Send + Sync + 'static>),
    /// It panicked with this message.
    Panic(String),
    /// It was still running when its grace period ended and was aborted.
    Aborted {
        /// The grace period it was given.
        grace: Duration,
    },
    /// It was still running when the shutdown was forced, and was aborted
    /// without waiting for its grace period: by
    /// [`ManagerHandle::force_shutdown`](crate::ManagerHandle::force_shutdown),
    /// or by a `SignalReceiver` (feature `signal`) that heard a second
    /// signal. A run whose first failure is this one exits with
    /// status 3 (see [`RunError::exit_code`]).
    Forced {
        /// The signal that forced the shutdown, or `None` if it was forced
        /// through a handle for another reason.
        signal: Option<Signal>,
    },
    /// It did not say it was ready within the manager's start timeout
    /// (ordered start) and was aborted.
    StartTimeout {
        /// The start timeout.
        timeout: Duration,
    },
    /// It went longer than its heartbeat timeout without a heartbeat and
    /// was aborted as wedged.
    Wedged {
        /// The heartbeat timeout.
        timeout: Duration,
    },
    /// It ended without failing (under
    /// [`Restart::Always`](crate::Restart::Always)), and restarting it
    /// would have exceeded its manager's restart limit
    /// ([`ChildFailure::exceeded_manager_restart_limit`]).
    Exited,
}

/// An insert that was refused; it hands the runnable back.
///
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, InsertErrorKind, ProcessManager};
///
/// let manager = ProcessManager::builder().name("pool").build();
/// let handle = manager.handle();
/// handle.request_shutdown()?;
/// let refused = handle.insert(IdleProcess).unwrap_err();
/// assert_eq!(refused.kind(), InsertErrorKind::ShuttingDown);
/// assert_eq!((refused.manager(), refused.child()), ("pool", "idle"));
/// assert_eq!(
///     refused.to_string(),
///     "cannot insert `idle` into process manager `pool`: it is shutting down",
/// );
/// // Nothing is lost: the runnable comes back.
/// let _idle: IdleProcess = refused.into_inner();
/// # Ok::<_, procmgr::BoxError>(())
/// ```
pub struct InsertError<R> {
    runnable: R,
    reason: InsertErrorKind,
    manager: String,
    child: String,
}

/// Why an insert was refused.
///
/// # Example
///
/// ```
/// use procmgr::{ChildOptions, IdleProcess, InsertErrorKind, ProcessManager};
///
/// let manager = ProcessManager::new();
/// let exact = ChildOptions::new().name("db").exact_name(true);
/// manager.insert_with(IdleProcess, exact.clone())?;
/// match manager.insert_with(IdleProcess, exact) {
///     Ok(_) => unreachable!("the exact name is taken"),
///     Err(refused) => match refused.kind() {
///         InsertErrorKind::DuplicateName => println!("pick another name"),
///         InsertErrorKind::ShuttingDown | InsertErrorKind::Stopped => println!("too late"),
///         _ => {}
///     },
/// }
/// # Ok::<_, procmgr::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsertErrorKind {
    /// The manager is shutting down.
    ShuttingDown,
    /// The manager has stopped.
    Stopped,
    /// The child asked for an exact name
    /// ([`ChildOptions::exact_name`](crate::ChildOptions::exact_name)) that
    /// a live sibling already has.
    DuplicateName,
    /// The manager holds as many children as it can: 2^32 records, live
    /// children and, with auto-cleanup off, ended ones it keeps.
    Full,
}

impl<R> InsertError<R> {
    pub(crate) fn new(
        runnable: R,
        reason: InsertErrorKind,
        manager: String,
        child: String,
    ) -> Self {
        InsertError {
            runnable,
            reason,
            manager,
            child,
        }
    }

    /// The path of the manager that refused the child (its name before it
    /// runs).
    pub fn manager(&self) -> &str {
        &self.manager
    }

    /// The name the child would have had.
    pub fn child(&self) -> &str {
        &self.child
    }

    /// Why the insert was refused.
    pub fn kind(&self) -> InsertErrorKind {
        self.reason
    }

    /// Takes the runnable back.
    pub fn into_inner(self) -> R {
        self.runnable
    }
}

impl<R> fmt::Debug for InsertError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("kind", &self.reason)
            .field("manager", &self.manager)
            .field("child", &self.child)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Display for InsertError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (manager, child) = (&self.manager, &self.child);
        match self.reason {
            InsertErrorKind::ShuttingDown => write!(
                f,
                "cannot insert `{child}` into process manager `{manager}`: it is shutting down"
            ),
            InsertErrorKind::DuplicateName => write!(
                f,
                "cannot insert `{child}` into process manager `{manager}`: a live child has that name"
            ),
            InsertErrorKind::Stopped => write!(
                f,
                "cannot insert `{child}` into process manager `{manager}`: it has stopped"
            ),
            InsertErrorKind::Full => write!(
                f,
                "cannot insert `{child}` into process manager `{manager}`: it holds 2^32 children, its limit"
            ),
        }
    }
}

impl<R> Error for InsertError<R> {}

/// Why [`ProcessManagerBuilder::try_build`](crate::ProcessManagerBuilder::try_build)
/// could not build a manager: one of the children given up front was refused
/// by the rule [`insert`](crate::ManagerHandle::insert) follows.
///
/// # Example
///
/// ```
/// use procmgr::{ChildOptions, IdleProcess, ProcessManager};
///
/// let error = ProcessManager::builder()
///     .name("api")
///     .child_with(IdleProcess, ChildOptions::new().name("http").exact_name(true))
///     .child_with(IdleProcess, ChildOptions::new().name("http").exact_name(true))
///     .try_build()
///     .unwrap_err();
/// assert_eq!((error.manager(), error.child()), ("api", "http"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildError {
    manager: String,
    child: String,
    kind: InsertErrorKind,
}

impl BuildError {
    pub(crate) fn new(manager: String, child: String, kind: InsertErrorKind) -> Self {
        BuildError {
            manager,
            child,
            kind,
        }
    }

    /// The name of the manager being built.
    pub fn manager(&self) -> &str {
        &self.manager
    }

    /// The name of the child that was refused.
    pub fn child(&self) -> &str {
        &self.child
    }

    /// Why it was refused.
    pub fn kind(&self) -> InsertErrorKind {
        self.kind
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            InsertErrorKind::DuplicateName => write!(
                f,
                "process manager `{}` was given two children named `{}`",
                self.manager, self.child
            ),
            _ => write!(
                f,
                "process manager `{}` refused its child `{}`",
                self.manager, self.child
            ),
        }
    }
}

impl Error for BuildError {}

/// A control request that could not be delivered.
///
/// # Example
///
/// ```
/// use procmgr::{ControlError, ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// let child = manager.insert(process_fn("once", async |_ctx| -> procmgr::Result { Ok(()) }))?;
/// manager.await?;
/// assert_eq!(child.request_reload(), Err(ControlError::Ended));
/// assert_eq!(child.request_shutdown(), Err(ControlError::Ended));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// The process has already ended.
    Ended,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Ended => f.write_str("process has already ended"),
        }
    }
}

impl Error for ControlError {}

/// A custom message that could not be delivered; it hands the message back.
///
/// # Example
///
/// ```
/// use procmgr::{ProcessManager, process_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), procmgr::BoxError> {
/// let manager = ProcessManager::new();
/// let child = manager.insert(process_fn("once", async |_ctx| -> procmgr::Result { Ok(()) }))?;
/// manager.await?;
/// let undelivered = child.send(String::from("hello")).unwrap_err();
/// assert_eq!(undelivered.into_inner(), "hello");
/// # Ok(())
/// # }
/// ```
pub struct SendError<T> {
    message: T,
}

impl<T> SendError<T> {
    pub(crate) fn new(message: T) -> Self {
        SendError { message }
    }

    /// Takes the message back.
    pub fn into_inner(self) -> T {
        self.message
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot send to a process that has already ended")
    }
}

impl<T> Error for SendError<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full manager says so, and hands the process back.
    #[test]
    fn a_full_manager_says_so_and_hands_the_process_back() {
        let refused = InsertError::new(7_u8, InsertErrorKind::Full, "root".into(), "w".into());
        assert_eq!(refused.kind(), InsertErrorKind::Full);
        assert_eq!(
            refused.to_string(),
            "cannot insert `w` into process manager `root`: it holds 2^32 children, its limit"
        );
        assert_eq!(refused.into_inner(), 7);
    }
}
