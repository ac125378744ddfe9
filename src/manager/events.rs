//! What the manager reports through the `tracing` and `log` features. Without
//! them every function here is empty and compiles away.

#![cfg_attr(
    not(any(feature = "tracing", feature = "log")),
    allow(unused_variables)
)]

use std::time::Duration;

use crate::control::{Outcome, ShutdownReason};

#[cfg(feature = "tracing")]
pub(crate) fn child_span(parent_path: &str, name: &str, id: u64, attempt: u32) -> tracing::Span {
    tracing::info_span!("process", name, id, path = %format_args!("{parent_path}/{name}"), attempt)
}

pub(crate) fn child_started(parent_path: &str, name: &str, id: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(path = %format_args!("{parent_path}/{name}"), id, "process started");
    #[cfg(feature = "log")]
    log::debug!("process {parent_path}/{name} (id {id}) started");
}

pub(crate) fn child_ended(parent_path: &str, name: &str, id: u64, outcome: &Outcome) {
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
pub(crate) fn attempt_failed(parent_path: &str, name: &str, id: u64, outcome: &Outcome) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        path = %format_args!("{parent_path}/{name}"), id, outcome = %outcome, "process attempt failed"
    );
    #[cfg(feature = "log")]
    log::warn!("process {parent_path}/{name} (id {id}) attempt {outcome}");
}

pub(crate) fn child_aborting(parent_path: &str, name: &str, id: u64, grace: Duration) {
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

pub(crate) fn child_forced(parent_path: &str, name: &str, id: u64) {
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

pub(crate) fn manager_stopping(path: &str, reason: Option<&ShutdownReason>) {
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
    name: &str,
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
