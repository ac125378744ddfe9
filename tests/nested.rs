//! Trees compose: a manager inserted into a manager is stopped and reloaded
//! through its parent and fails like any child.

use std::sync::Arc;
use std::time::Duration;

use procmgr::{
    ChildOptions, FailureCause, IdleProcess, Outcome, ProcessManager, Runnable, ShutdownReason,
    process_fn,
};
use tokio::time::{Instant, timeout};

fn stops_when_asked(name: &'static str) -> impl Runnable {
    process_fn(name, |ctx| async move {
        ctx.shutdown_requested().await;
        Ok::<_, std::io::Error>(())
    })
}

#[tokio::test(start_paused = true)]
async fn stopping_a_nested_manager_through_its_parent_stops_its_subtree_only() {
    let nested = ProcessManager::builder().name("inner").build();
    let deep = nested.insert(stops_when_asked("deep")).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let top = root.insert(stops_when_asked("top")).expect("accepted");
    let inner = root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    assert!(matches!(inner.shutdown().await, Outcome::Stopped));
    assert!(matches!(deep.outcome(), Some(Outcome::Stopped)));
    assert!(!top.is_finished());

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(top.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_nested_managers_own_handle_stops_it_and_its_parent_sees_it_stopped() {
    let nested = ProcessManager::builder()
        .name("inner")
        .child(IdleProcess)
        .build();
    let nested_handle = nested.handle();
    let root = ProcessManager::builder()
        .name("root")
        .child(IdleProcess)
        .build();
    let inner = root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    assert!(matches!(nested_handle.shutdown().await, Outcome::Stopped));
    assert!(matches!(inner.wait().await, Outcome::Stopped));
    assert!(!handle.is_finished());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_parents_shutdown_reaches_grandchildren_and_waits_for_them() {
    let nested = ProcessManager::builder().name("inner").build();
    let slow = nested
        .insert(process_fn("slow", |ctx| async move {
            ctx.shutdown_requested().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let root = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(5))
        .build();
    root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    run.await.expect("joined").expect("clean stop");
    assert_eq!(asked.elapsed(), Duration::from_secs(2));
    assert!(matches!(slow.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_that_overruns_the_parents_grace_is_aborted_with_its_children() {
    let nested = ProcessManager::builder()
        .name("inner")
        .grace_period(Duration::from_secs(60))
        .build();
    let stuck = nested
        .insert(process_fn("stuck", |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let root = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(1))
        .build();
    // A grace period given at insert wins over the one the nested manager
    // asks for (its own plus a margin).
    let inner = root
        .insert_with(
            nested,
            ChildOptions::new().grace_period(Duration::from_secs(1)),
        )
        .expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let error = run
        .await
        .expect("joined")
        .expect_err("the abort is reported");
    assert_eq!(asked.elapsed(), Duration::from_secs(1));
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/inner");
    assert!(matches!(failure.cause(), FailureCause::Aborted { .. }));
    assert!(matches!(inner.outcome(), Some(Outcome::Aborted)));
    assert!(matches!(stuck.wait().await, Outcome::Aborted));
}

#[tokio::test(start_paused = true)]
async fn with_default_grace_periods_the_stuck_leaf_is_reported_not_its_manager() {
    let nested = ProcessManager::builder().name("inner").build();
    let stuck = nested
        .insert(process_fn("stuck", |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let inner = root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    let error = run
        .await
        .expect("joined")
        .expect_err("the abort is reported");
    assert_eq!(asked.elapsed(), procmgr::DEFAULT_GRACE_PERIOD);
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/inner/stuck");
    assert!(matches!(stuck.outcome(), Some(Outcome::Aborted)));
    assert!(matches!(inner.outcome(), Some(Outcome::Failed(_))));
}

/// How the parent holds the nested manager.
#[derive(Clone, Copy)]
enum Held {
    /// Inserted by value: the parent owns it.
    Owned,
    /// Inserted as an `Arc` the test keeps a clone of.
    Shared,
}

/// Runs a root whose forced shutdown was asked for before it ran, so that
/// its nested manager's task is aborted before it was ever polled, and
/// checks that every handle of the nested manager's subtree resolves.
async fn aborted_before_its_first_poll_resolves_every_handle(auto_cleanup: bool, held: Held) {
    let nested = ProcessManager::builder().name("inner").build();
    let deep = nested.insert(stops_when_asked("deep")).expect("accepted");
    let inner_handle = nested.handle();
    let root = ProcessManager::builder()
        .name("root")
        .auto_cleanup(auto_cleanup)
        .grace_period(Duration::ZERO)
        .build();
    let (inner, kept) = match held {
        Held::Owned => (root.insert(nested).expect("accepted"), None),
        Held::Shared => {
            let nested = Arc::new(nested);
            let inner = root.insert(Arc::clone(&nested)).expect("accepted");
            (inner, Some(nested))
        }
    };
    let handle = root.handle();
    handle
        .force_shutdown(ShutdownReason::Requested)
        .expect("not ended");

    let limit = Duration::from_secs(60);
    timeout(limit, root.into_future())
        .await
        .expect("the root ends")
        .expect_err("the aborted child is reported");
    assert!(matches!(
        timeout(limit, inner.wait()).await,
        Ok(Outcome::Aborted)
    ));
    assert!(
        timeout(limit, inner_handle.wait()).await.is_ok(),
        "the nested manager's own handle waits forever"
    );
    assert!(
        timeout(limit, deep.wait()).await.is_ok(),
        "the nested manager's child's handle waits forever"
    );
    drop(kept);
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_aborted_before_it_ran_resolves_its_handles() {
    aborted_before_its_first_poll_resolves_every_handle(true, Held::Owned).await;
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_aborted_before_it_ran_resolves_its_handles_when_its_parent_keeps_ended_records()
 {
    aborted_before_its_first_poll_resolves_every_handle(false, Held::Owned).await;
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_aborted_before_it_ran_resolves_its_handles_when_the_user_holds_it_in_an_arc()
 {
    aborted_before_its_first_poll_resolves_every_handle(true, Held::Shared).await;
}

/// A nested manager that stops on its own (its significant child ended)
/// was asked to stop as far as its parent is concerned: its outcome there
/// reads `Stopped`, not `Completed`.
#[tokio::test(start_paused = true)]
async fn a_nested_manager_that_stops_on_its_own_reads_stopped_in_its_parent() {
    let nested = ProcessManager::builder().name("inner").build();
    let main = nested
        .insert_with(
            process_fn("main", |_ctx| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().significant(true),
        )
        .expect("accepted");
    let helper = nested.insert(stops_when_asked("helper")).expect("accepted");
    let root = ProcessManager::builder()
        .name("root")
        .child(IdleProcess)
        .build();
    let inner = root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());

    assert!(matches!(inner.wait().await, Outcome::Stopped));
    assert!(matches!(main.outcome(), Some(Outcome::Completed)));
    assert!(matches!(helper.outcome(), Some(Outcome::Stopped)));
    assert!(!handle.is_finished(), "the root runs on");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

/// A nested manager asked to stop through its own handle, with a reason,
/// stops through its parent, and its children are told that reason.
#[tokio::test(start_paused = true)]
async fn a_nested_managers_children_see_the_reason_its_own_handle_gave() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let nested = ProcessManager::builder().name("inner").build();
    nested
        .insert(process_fn("leaf", move |ctx| {
            let tx = tx.lock().expect("lock").take();
            async move {
                ctx.shutdown_requested().await;
                if let Some(tx) = tx {
                    let _ = tx.send(ctx.shutdown_reason());
                }
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let nested_handle = nested.handle();
    let root = ProcessManager::builder()
        .name("root")
        .child(IdleProcess)
        .build();
    root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    nested_handle
        .request_shutdown_with(ShutdownReason::Signal(procmgr::Signal::Terminate))
        .expect("running");
    let seen = timeout(Duration::from_secs(60), rx)
        .await
        .expect("the leaf was stopped")
        .expect("reported");
    assert_eq!(
        seen,
        Some(ShutdownReason::Signal(procmgr::Signal::Terminate))
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}
