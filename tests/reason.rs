//! The shutdown reason a process sees, and the one the manager's result
//! carries.

use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, FailureCause, IdleProcess, Outcome, ProcessManager, Restart, Runnable,
    ShutdownReason, Signal, Strategy, process_fn,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Waits for shutdown and reports the reason it was given.
fn reporter(
    name: &'static str,
    reasons: mpsc::UnboundedSender<(&'static str, Option<ShutdownReason>)>,
) -> impl Runnable {
    process_fn(name, move |ctx| {
        let reasons = reasons.clone();
        async move {
            assert_eq!(ctx.shutdown_reason(), None);
            ctx.shutdown_requested().await;
            reasons
                .send((name, ctx.shutdown_reason()))
                .expect("test listens");
            Ok::<_, std::io::Error>(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_request_through_the_managers_handle() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    manager.insert(reporter("worker", tx)).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    assert!(!handle.is_shutdown_requested());
    handle.request_shutdown().expect("running");
    assert!(handle.is_shutdown_requested());
    assert_eq!(
        reasons.recv().await,
        Some(("worker", Some(ShutdownReason::Requested)))
    );
    let exit = run.await.expect("joined").expect("clean stop");
    assert_eq!(exit.shutdown_reason(), Some(&ShutdownReason::Requested));
}

#[tokio::test(start_paused = true)]
async fn a_signal_reason_given_through_the_handle_reaches_every_child() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    manager.insert(reporter("a", tx.clone())).expect("accepted");
    manager.insert(reporter("b", tx)).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    handle
        .request_shutdown_with(ShutdownReason::Signal(Signal::Terminate))
        .expect("running");
    // A later reason does not replace the first.
    handle.request_shutdown().expect("still stopping");
    for _ in 0..2 {
        let (_, reason) = reasons.recv().await.expect("reported");
        assert_eq!(reason, Some(ShutdownReason::Signal(Signal::Terminate)));
    }
    let exit = run.await.expect("joined").expect("clean stop");
    assert_eq!(
        exit.shutdown_reason(),
        Some(&ShutdownReason::Signal(Signal::Terminate))
    );
    assert_eq!(
        handle.shutdown_reason(),
        Some(ShutdownReason::Signal(Signal::Terminate))
    );
    assert_eq!(
        ShutdownReason::Signal(Signal::Terminate).to_string(),
        "received SIGTERM"
    );
}

#[tokio::test(start_paused = true)]
async fn a_siblings_failure_names_the_sibling() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().name("root").build();
    manager.insert(reporter("steady", tx)).expect("accepted");
    manager
        .insert(process_fn("flaky", |_ctx| async { Err::<(), _>("broke") }))
        .expect("accepted");
    let error = manager.await.expect_err("failed");
    let expected = ShutdownReason::ChildFailed {
        path: "root/flaky".to_owned(),
    };
    assert_eq!(
        reasons.recv().await,
        Some(("steady", Some(expected.clone())))
    );
    assert_eq!(
        error.failures().expect("failures").shutdown_reason(),
        Some(&expected)
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_stopped_alone_sees_a_request_and_nested_children_see_their_parent() {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let nested = ProcessManager::builder().name("inner").build();
    nested
        .insert(reporter("deep", tx.clone()))
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let alone = root.insert(reporter("alone", tx)).expect("accepted");
    root.insert(nested).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());
    tokio::task::yield_now().await;

    alone.shutdown().await;
    assert_eq!(
        reasons.recv().await,
        Some(("alone", Some(ShutdownReason::Requested)))
    );
    handle
        .request_shutdown_with(ShutdownReason::Signal(Signal::Interrupt))
        .expect("running");
    let (name, reason) = reasons.recv().await.expect("reported");
    assert_eq!(name, "deep");
    let reason = reason.expect("shutdown was requested");
    assert_eq!(
        reason,
        ShutdownReason::Parent(Box::new(ShutdownReason::Signal(Signal::Interrupt)))
    );
    assert_eq!(reason.root(), &ShutdownReason::Signal(Signal::Interrupt));
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_child_stopped_through_its_handle_still_sees_a_request_after_its_manager_stops_for_a_signal()
 {
    let (tx, mut reasons) = mpsc::unbounded_channel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let manager = ProcessManager::new();
    let child = manager
        .insert(process_fn("worker", move |ctx| {
            let (tx, started_tx) = (tx.clone(), started_tx.clone());
            async move {
                started_tx.send(()).expect("test listens");
                ctx.shutdown_requested().await;
                tx.send(ctx.shutdown_reason()).expect("test listens");
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    started.recv().await.expect("started");

    child.request_shutdown().expect("running");
    handle
        .request_shutdown_with(ShutdownReason::Signal(Signal::Terminate))
        .expect("running");
    assert_eq!(reasons.recv().await, Some(Some(ShutdownReason::Requested)));
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn the_attempt_after_a_group_restart_no_longer_sees_the_failure_that_restarted_it() {
    // (attempt, None) when an attempt starts, (attempt, its reason) when it
    // is asked to stop.
    let (tx, mut seen) = mpsc::unbounded_channel();
    let restartable = ChildOptions::new()
        .restart(Restart::OnFailure)
        .backoff(Backoff::none());
    let manager = ProcessManager::builder()
        .name("root")
        .strategy(Strategy::OneForAll)
        .build();
    let steady = manager
        .insert_with(
            process_fn("steady", move |ctx| {
                let tx = tx.clone();
                async move {
                    tx.send((ctx.attempt(), None)).expect("test listens");
                    ctx.shutdown_requested().await;
                    tx.send((ctx.attempt(), ctx.shutdown_reason()))
                        .expect("test listens");
                    Ok::<_, std::io::Error>(())
                }
            }),
            restartable.clone(),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("flaky", |ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("broke");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            restartable,
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    assert_eq!(seen.recv().await, Some((1, None)));
    let restarted = ShutdownReason::ChildFailed {
        path: "root/flaky".to_owned(),
    };
    assert_eq!(seen.recv().await, Some((1, Some(restarted))));
    assert_eq!(seen.recv().await, Some((2, None)));
    steady.request_shutdown().expect("running");
    assert_eq!(
        seen.recv().await,
        Some((2, Some(ShutdownReason::Requested)))
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_manager_whose_children_all_ended_has_no_reason() {
    let manager = ProcessManager::new();
    manager
        .insert(process_fn("once", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let exit = manager.await.expect("clean end");
    assert_eq!(exit.shutdown_reason(), None);
}

#[tokio::test(start_paused = true)]
async fn a_forced_shutdown_aborts_at_once_and_says_so() {
    let manager = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_secs(30))
        .build();
    let stubborn = manager
        .insert(process_fn("stubborn", |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let polite = manager.insert(IdleProcess).expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;

    handle
        .request_shutdown_with(ShutdownReason::Signal(Signal::Interrupt))
        .expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let forced_at = Instant::now();
    handle
        .force_shutdown(ShutdownReason::Forced(Signal::Interrupt))
        .expect("still stopping");
    let error = run
        .await
        .expect("joined")
        .expect_err("the abort is reported");
    assert_eq!(forced_at.elapsed(), Duration::ZERO);
    let failures = error.failures().expect("failures");
    assert_eq!(failures.first().path(), "root/stubborn");
    assert!(matches!(
        failures.first().cause(),
        FailureCause::Forced {
            signal: Some(Signal::Interrupt)
        }
    ));
    assert_eq!(
        failures.shutdown_reason(),
        Some(&ShutdownReason::Forced(Signal::Interrupt))
    );
    assert!(matches!(stubborn.outcome(), Some(Outcome::Aborted)));
    assert!(matches!(polite.outcome(), Some(Outcome::Stopped)));
    assert_eq!(
        handle.force_shutdown(ShutdownReason::Requested),
        Err(procmgr::ControlError::Ended)
    );
}

#[tokio::test(start_paused = true)]
async fn a_forced_shutdown_spares_background_children_which_stop_last() {
    let (tx, mut order) = mpsc::unbounded_channel();
    let manager = ProcessManager::builder().name("root").build();
    let tx2 = tx.clone();
    manager
        .insert_with(
            process_fn("watcher", move |ctx| {
                let tx = tx2.clone();
                async move {
                    ctx.shutdown_requested().await;
                    tx.send("watcher").expect("test listens");
                    Ok::<_, std::io::Error>(())
                }
            }),
            ChildOptions::new().background(true),
        )
        .expect("accepted");
    manager
        .insert(process_fn("stubborn", move |_ctx| {
            let tx = tx.clone();
            async move {
                struct Dropped(mpsc::UnboundedSender<&'static str>);
                impl Drop for Dropped {
                    fn drop(&mut self) {
                        let _ = self.0.send("stubborn dropped");
                    }
                }
                let _dropped = Dropped(tx);
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::task::yield_now().await;
    handle
        .force_shutdown(ShutdownReason::Forced(Signal::Terminate))
        .expect("running");
    assert!(run.await.expect("joined").is_err());
    assert_eq!(order.recv().await, Some("stubborn dropped"));
    assert_eq!(order.recv().await, Some("watcher"));
}
