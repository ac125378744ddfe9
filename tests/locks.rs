//! No user code runs under a manager's lock: a process, an error or a panic
//! payload is dropped, and an error is formatted, only after the lock is
//! released, so user code that calls back into a handle from `Drop` or
//! `Display` cannot deadlock the manager.
//!
//! A deadlock on the lock blocks its thread for good, so each scenario runs
//! on a thread of its own and the test fails if it does not finish in time.

mod common;

use std::error::Error;
use std::fmt;
use std::time::Duration;

use common::run_on_its_own_thread;
use procmgr::{
    Backoff, ChildOptions, ChildState, IdleProcess, Jitter, ManagerHandle, ProcessManager, Restart,
    RestartLimit, Runnable, process_fn,
};
use tokio::time::timeout;

/// Real time a scenario gets; each takes milliseconds when nothing
/// deadlocks.
const LIMIT: Duration = Duration::from_secs(10);

/// Virtual time within which each scenario ends, so that a manager that
/// merely runs on fails differently from one that deadlocks.
const MINUTE: Duration = Duration::from_secs(60);

/// An error or panic payload that looks at its manager's children when it
/// is dropped.
#[derive(Debug)]
struct LooksAroundOnDrop(ManagerHandle);

impl Drop for LooksAroundOnDrop {
    fn drop(&mut self) {
        let _ = self.0.children();
    }
}

impl fmt::Display for LooksAroundOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("went wrong")
    }
}

impl Error for LooksAroundOnDrop {}

/// An error that says how many siblings its process had when it is shown.
#[derive(Debug)]
struct LooksAroundOnDisplay(ManagerHandle);

impl fmt::Display for LooksAroundOnDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "went wrong beside {} children", self.0.children().len())
    }
}

impl Error for LooksAroundOnDisplay {}

/// A process that looks at its manager's children, and tries to add one,
/// when it is dropped.
struct LooksAroundWhenDropped(ManagerHandle);

impl Runnable for LooksAroundWhenDropped {
    type Error = std::io::Error;

    async fn run(&self, _ctx: procmgr::Context) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Drop for LooksAroundWhenDropped {
    fn drop(&mut self) {
        let _ = self.0.snapshot();
        // Refused or accepted (it ends at once), it must not block.
        let _ = self.0.insert(process_fn("late", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }));
    }
}

fn fixed(delay: Duration) -> Backoff {
    Backoff::exponential(delay, delay).jitter(Jitter::None)
}

#[test]
fn a_failed_attempts_error_is_dropped_after_the_lock() {
    run_on_its_own_thread(
        LIMIT,
        "deadlocked: a failed attempt's error was dropped under the lock",
        || async {
            let manager = ProcessManager::new();
            let handle = manager.handle();
            // Each attempt's error is kept until the next attempt's end
            // replaces it, or until the child's end is final.
            manager
                .insert_with(
                    process_fn("flaky", move |_ctx| {
                        let handle = handle.clone();
                        async move { Err::<(), _>(LooksAroundOnDrop(handle)) }
                    }),
                    ChildOptions::new()
                        .restart(Restart::OnFailure)
                        .backoff(Backoff::none())
                        .restart_limit(RestartLimit::new(2, Duration::from_secs(60))),
                )
                .expect("accepted");
            let result = timeout(MINUTE, manager.into_future()).await;
            assert!(
                matches!(result, Ok(Err(_))),
                "past its limit, the child fails"
            );
        },
    );
}

#[test]
fn a_panic_payload_is_dropped_after_the_lock() {
    run_on_its_own_thread(
        LIMIT,
        "deadlocked: a panic payload was dropped under the lock",
        || async {
            let manager = ProcessManager::new();
            let handle = manager.handle();
            manager
                .insert(process_fn("panics", move |_ctx| {
                    let handle = handle.clone();
                    async move {
                        std::panic::panic_any(LooksAroundOnDrop(handle));
                        #[allow(unreachable_code)]
                        Ok::<_, std::io::Error>(())
                    }
                }))
                .expect("accepted");
            let result = timeout(MINUTE, manager.into_future()).await;
            assert!(matches!(result, Ok(Err(_))), "a panic is a failure");
        },
    );
}

#[test]
fn a_process_dropped_by_its_manager_may_use_the_managers_handle() {
    run_on_its_own_thread(
        LIMIT,
        "deadlocked: a process was dropped under the lock",
        || async {
            let manager = ProcessManager::new();
            manager
                .insert(LooksAroundWhenDropped(manager.handle()))
                .expect("accepted");
            let handle = manager.handle();
            timeout(MINUTE, manager.into_future())
                .await
                .expect("the manager ends")
                .expect("clean end");
            // Dropped by now or with the manager; either way without
            // blocking.
            drop(handle);
        },
    );
}

#[test]
fn snapshot_formats_a_childs_error_after_the_lock() {
    run_on_its_own_thread(
        LIMIT,
        "deadlocked: snapshot() formatted an error under the lock",
        || async {
            let manager = ProcessManager::builder().child(IdleProcess).build();
            let handle = manager.handle();
            let shown = handle.clone();
            let flaky = manager
                .insert_with(
                    process_fn("flaky", move |_ctx| {
                        let shown = shown.clone();
                        async move { Err::<(), _>(LooksAroundOnDisplay(shown)) }
                    }),
                    ChildOptions::new()
                        .restart(Restart::OnFailure)
                        .backoff(fixed(Duration::from_secs(60))),
                )
                .expect("accepted");
            let run = tokio::spawn(manager.into_future());
            // Waiting for its restart, with its last error kept.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let snapshot = handle.snapshot();
            let info = snapshot
                .iter()
                .find(|info| info.id() == flaky.id())
                .expect("listed");
            assert!(matches!(info.state(), ChildState::Restarting { .. }));
            assert_eq!(info.last_error(), Some("went wrong beside 2 children"));
            handle.shutdown().await;
            run.await.expect("joined").expect("clean stop");
        },
    );
}

#[test]
fn tree_formats_an_ended_childs_error_after_the_lock() {
    run_on_its_own_thread(
        LIMIT,
        "deadlocked: tree() formatted an error under the lock",
        || async {
            let manager = ProcessManager::builder()
                .name("root")
                .auto_cleanup(false)
                .child(IdleProcess)
                .build();
            let handle = manager.handle();
            let shown = handle.clone();
            let failed = manager
                .insert_with(
                    process_fn("failed", move |_ctx| {
                        let shown = shown.clone();
                        async move { Err::<(), _>(LooksAroundOnDisplay(shown)) }
                    }),
                    ChildOptions::new().escalate(false),
                )
                .expect("accepted");
            let run = tokio::spawn(manager.into_future());
            failed.wait().await;
            let tree = handle.tree().to_string();
            assert!(tree.contains("went wrong beside 2 children"), "{tree}");
            handle.shutdown().await;
            run.await.expect("joined").expect("clean stop");
        },
    );
}
