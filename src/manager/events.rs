//! What the manager reports through the `tracing` and `log` features. Without
//! them every function here is empty and compiles away.

#![cfg_attr(
    not(any(feature = "tracing", feature = "log")),
    allow(unused_variables)
)]

use std::time::Duration;

use super::shared::ManagerShared;
use crate::control::{ChildCore, ChildName, Outcome, ShutdownReason};

/// Why an attempt failed, the `cause` label of `procmgr_failures_total`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause {
    Error = 0,
    Panic = 1,
    Aborted = 2,
    Wedged = 3,
    StartTimeout = 4,
}

/// An attempt failed (whether or not it is restarted). Its log line is
/// [`attempt_failed`] or [`child_ended`], which know what follows.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn failure(manager: &ManagerShared, core: &ChildCore, cause: Cause) {
    #[cfg(feature = "metrics")]
    manager.metrics.failed(core, cause);
}

/// The run has returned.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn manager_finished(manager: &ManagerShared) {
    #[cfg(feature = "metrics")]
    manager.metrics.finished();
}

/// A child's span, a child of its manager's, so that an event inside the
/// child carries its whole path in its span ancestry.
#[cfg(feature = "tracing")]
pub(crate) fn child_span(
    manager: &tracing::Span,
    parent_path: &str,
    name: &str,
    id: u64,
    attempt: u32,
) -> tracing::Span {
    tracing::info_span!(
        parent: manager, "process", name, id, path = %format_args!("{parent_path}/{name}"), attempt
    )
}

/// The span a root manager runs in; its children's spans are its children.
#[cfg(feature = "tracing")]
pub(crate) fn root_span(name: &str) -> tracing::Span {
    tracing::info_span!("manager", name, path = name)
}

pub(crate) fn child_started(parent_path: &str, name: &ChildName, id: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(path = %format_args!("{parent_path}/{name}"), id, "process started");
    #[cfg(feature = "log")]
    log::debug!("process {parent_path}/{name} (id {id}) started");
}

pub(crate) fn child_ended(parent_path: &str, name: &ChildName, id: u64, outcome: &Outcome) {
    #[cfg(feature = "tracing")]
    match outcome {
        Outcome::Failed(error) => tracing::error!(
            path = %format_args!("{parent_path}/{name}"), id, error = %error, "process failed"
        ),
        Outcome::Panicked(message) => tracing::error!(
            path = %format_args!("{parent_path}/{name}"), id, panic = %message, "process panicked"
        ),
        Outcome::Aborted => tracing::warn!(
            path = %format_args!("{parent_path}/{name}"), id, "process aborted"
        ),
        other => tracing::debug!(
            path = %format_args!("{parent_path}/{name}"), id, outcome = %other, "process ended"
        ),
    }
    #[cfg(feature = "log")]
    match outcome {
        Outcome::Failed(_) | Outcome::Panicked(_) => {
            log::error!("process {parent_path}/{name} (id {id}) {outcome}");
        }
        Outcome::Aborted => log::warn!("process {parent_path}/{name} (id {id}) aborted"),
        other => log::debug!("process {parent_path}/{name} (id {id}) {other}"),
    }
}

/// Whether anything is logged at all: without a logging feature, callers
/// skip preparing what only the log would show.
pub(crate) const LOGS: bool = cfg!(any(feature = "tracing", feature = "log"));

/// An attempt failed; whether the child restarts follows separately.
pub(crate) fn attempt_failed(parent_path: &str, name: &ChildName, id: u64, outcome: &Outcome) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        path = %format_args!("{parent_path}/{name}"), id, outcome = %outcome, "process attempt failed"
    );
    #[cfg(feature = "log")]
    log::warn!("process {parent_path}/{name} (id {id}) attempt {outcome}");
}

/// The manager aborts a child; `failure` if that makes its attempt a
/// failure.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
/// A child is aborted: after its `grace` period, or with `None` because the
/// shutdown was forced.
pub(crate) fn child_aborting(
    manager: &ManagerShared,
    core: &ChildCore,
    grace: Option<Duration>,
    failure: Option<Cause>,
) {
    #[cfg(feature = "metrics")]
    {
        manager.metrics.aborted();
        if let Some(cause) = failure {
            manager.metrics.failed(core, cause);
        }
    }
    let (parent_path, name, id) = (manager.path(), &core.name, core.id);
    // Without `tracing` and `log` both arms are empty.
    #[cfg(any(feature = "tracing", feature = "log"))]
    match grace {
        Some(grace) => {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                path = %format_args!("{parent_path}/{name}"), id, ?grace,
                "process still running after its grace period, aborting it"
            );
            #[cfg(feature = "log")]
            log::warn!(
                "process {parent_path}/{name} (id {id}) still running after its grace period of {grace:?}, aborting it"
            );
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                path = %format_args!("{parent_path}/{name}"), id,
                "process still running when the shutdown was forced, aborting it"
            );
            #[cfg(feature = "log")]
            log::warn!(
                "process {parent_path}/{name} (id {id}) still running when the shutdown was forced, aborting it"
            );
        }
    }
    #[cfg(not(any(feature = "tracing", feature = "log")))]
    let _ = (parent_path, name, id, grace);
}

/// One poll of a child's future took `took`, over its `threshold`.
pub(crate) fn slow_poll(
    parent_path: &str,
    name: &ChildName,
    id: u64,
    took: Duration,
    threshold: Duration,
) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        path = %format_args!("{parent_path}/{name}"), id, ?took, ?threshold,
        "process blocked its thread: one poll took longer than its slow-poll threshold"
    );
    #[cfg(feature = "log")]
    log::warn!(
        "process {parent_path}/{name} (id {id}) blocked its thread: one poll took {took:?}, over its slow-poll threshold of {threshold:?}"
    );
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn manager_stopping(
    manager: &ManagerShared,
    path: &str,
    reason: Option<&ShutdownReason>,
) {
    #[cfg(feature = "metrics")]
    manager.metrics.stop_began();
    let reason = reason.unwrap_or(&ShutdownReason::Requested);
    #[cfg(feature = "tracing")]
    tracing::info!(path, reason = %reason, "process manager shutting down");
    #[cfg(feature = "log")]
    log::info!("process manager {path} shutting down: {reason}");
}

pub(crate) fn manager_draining(path: &str, drain: Duration, reason: Option<&ShutdownReason>) {
    let reason = reason.unwrap_or(&ShutdownReason::Requested);
    #[cfg(feature = "tracing")]
    tracing::info!(path, reason = %reason, drain = ?drain, "process manager draining");
    #[cfg(feature = "log")]
    log::info!("process manager {path} draining for {drain:?}: {reason}");
}

pub(crate) fn child_restarting(
    parent_path: &str,
    name: &ChildName,
    id: u64,
    attempt: u32,
    delay: Duration,
) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        path = %format_args!("{parent_path}/{name}"), id, attempt, ?delay,
        "process restarting"
    );
    #[cfg(feature = "log")]
    log::info!(
        "process {parent_path}/{name} (id {id}) restarting as attempt {attempt} in {delay:?}"
    );
}
