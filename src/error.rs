//! The error types: what a manager's run returns, and what misuse of a handle
//! or an insert reports.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::control::ShutdownReason;
use crate::policy::RestartLimit;

/// Why a [`ProcessManager`](crate::ProcessManager) run did not end cleanly.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RunError {
    /// The manager was run before; a manager runs at most once.
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
#[derive(Debug, Clone)]
pub struct ChildFailure {
    path: String,
    id: u64,
    cause: FailureCause,
    exceeded: Option<Exceeded>,
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
        }
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
        match &self.exceeded {
            Some(Exceeded::Child(limit)) => {
                write!(f, ", more often than its restart limit of {limit}")
            }
            Some(Exceeded::Manager(limit)) => write!(
                f,
                ", and restarting it would exceed its manager's restart limit of {limit}"
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
            | FailureCause::StartTimeout { .. }
            | FailureCause::Wedged { .. }
            | FailureCause::Exited => None,
        }
    }
}

/// How a child failed.
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
pub struct InsertError<R> {
    runnable: R,
    reason: InsertErrorKind,
    manager: String,
    child: String,
}

/// Why an insert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsertErrorKind {
    /// The manager is shutting down.
    ShuttingDown,
    /// The manager has stopped.
    Stopped,
    /// A live sibling already has this name.
    DuplicateName,
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
        }
    }
}

impl<R> Error for InsertError<R> {}

/// Why [`ProcessManagerBuilder::try_build`](crate::ProcessManagerBuilder::try_build)
/// could not build a manager: one of the children given up front was refused
/// by the rule [`insert`](crate::ManagerHandle::insert) follows.
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
