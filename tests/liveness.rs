//! Liveness: a child that stops sending heartbeats for longer than its limit
//! is treated as wedged, and its restart policy applies.

use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, FailureCause, IdleProcess, Outcome, ProcessManager, Restart,
    RestartLimit, process_fn,
};
use tokio::time::{Instant, timeout};

/// Beats every 500 ms for `beats` beats (per attempt), then hangs.
fn beating(beats: u32) -> impl procmgr::Runnable {
    process_fn("worker", move |ctx| async move {
        for _ in 0..beats {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ctx.heartbeat();
        }
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    })
}

#[tokio::test(start_paused = true)]
async fn a_child_that_stops_beating_is_failed_after_its_limit() {
    let manager = ProcessManager::builder()
        .name("root")
        .child(IdleProcess)
        .build();
    let child = manager
        .insert_with(
            beating(6),
            ChildOptions::new().heartbeat_timeout(Duration::from_secs(2)),
        )
        .expect("accepted");
    let started = Instant::now();
    let error = manager.await.expect_err("wedged is a failure");
    // Last beat at 3 s, stale at 5 s.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/worker");
    assert!(matches!(
        failure.cause(),
        FailureCause::Wedged { timeout } if *timeout == Duration::from_secs(2)
    ));
    assert_eq!(
        failure.to_string(),
        "process root/worker was wedged: no heartbeat for 2s"
    );
    assert!(matches!(child.outcome(), Some(Outcome::Aborted)));
}

#[tokio::test(start_paused = true)]
async fn a_wedged_child_is_restarted_by_its_policy() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let child = manager
        .insert_with(
            beating(2),
            ChildOptions::new()
                .heartbeat_timeout(Duration::from_secs(1))
                .restart(Restart::OnFailure)
                .backoff(Backoff::none()),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    // Each attempt: beats at 0.5 s and 1 s, wedged at 2 s.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(child.restarts(), 2);
    assert!(!child.is_finished());
    handle.shutdown().await;
    assert!(
        run.await.expect("joined").is_err(),
        "the hung attempt is aborted at shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_that_keeps_beating_keeps_running() {
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            process_fn("steady", |ctx| async move {
                loop {
                    tokio::select! {
                        () = ctx.shutdown_requested() => return Ok::<_, std::io::Error>(()),
                        () = tokio::time::sleep(Duration::from_millis(900)) => ctx.heartbeat(),
                    }
                }
            }),
            ChildOptions::new().heartbeat_timeout(Duration::from_secs(1)),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!child.is_finished());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn a_ready_child_that_keeps_beating_keeps_running() {
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            process_fn("steady", |ctx| async move {
                ctx.mark_ready();
                loop {
                    tokio::select! {
                        () = ctx.shutdown_requested() => return Ok::<_, std::io::Error>(()),
                        () = tokio::time::sleep(Duration::from_millis(900)) => ctx.heartbeat(),
                    }
                }
            }),
            ChildOptions::new()
                .heartbeat_timeout(Duration::from_secs(1))
                .reports_ready(true),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(child.is_ready());
    assert!(
        !child.is_finished(),
        "its heartbeats went unheard once ready"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_context_kept_after_its_attempt_cannot_keep_the_next_attempt_alive() {
    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert_with(
            process_fn("worker", |ctx| async move {
                if ctx.attempt() > 1 {
                    // Never beats.
                    ctx.shutdown_requested().await;
                    return Ok(());
                }
                // The first attempt leaves a task behind that beats with its
                // context forever.
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        ctx.heartbeat();
                    }
                });
                Err("first attempt fails")
            }),
            ChildOptions::new()
                .heartbeat_timeout(Duration::from_secs(1))
                .restart(Restart::OnFailure)
                .backoff(Backoff::none())
                .restart_limit(RestartLimit::new(1, Duration::from_secs(60))),
        )
        .expect("accepted");
    let started = Instant::now();
    // The second attempt is wedged at 1 s and, past its restart limit, fails
    // the manager.
    let error = timeout(Duration::from_secs(60), manager.into_future())
        .await
        .expect("the second attempt was kept alive by the first one's context")
        .expect_err("wedged is a failure");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert!(matches!(
        error.failures().expect("failures").first().cause(),
        FailureCause::Wedged { .. }
    ));
}

/// Beats every 500 ms until asked to stop, then takes 3 s to stop, without
/// beating.
fn beats_then_drains() -> impl procmgr::Runnable {
    process_fn("drainer", |ctx| async move {
        loop {
            tokio::select! {
                () = ctx.shutdown_requested() => break,
                () = tokio::time::sleep(Duration::from_millis(500)) => ctx.heartbeat(),
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok::<_, std::io::Error>(())
    })
}

/// A heartbeat timeout of 1 s, a grace period of 10 s.
fn draining_options() -> ChildOptions {
    ChildOptions::new()
        .heartbeat_timeout(Duration::from_secs(1))
        .grace_period(Duration::from_secs(10))
}

#[tokio::test(start_paused = true)]
async fn a_child_asked_to_stop_through_its_handle_has_its_grace_period_not_its_heartbeat_timeout() {
    let manager = ProcessManager::builder()
        .name("root")
        .child(IdleProcess)
        .build();
    let child = manager
        .insert_with(beats_then_drains(), draining_options())
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(2_200)).await;

    let asked = Instant::now();
    assert!(matches!(child.shutdown().await, Outcome::Stopped));
    assert_eq!(asked.elapsed(), Duration::from_secs(3));
    assert!(!handle.is_finished(), "the manager runs on");
    handle.shutdown().await;
    run.await.expect("joined").expect("no child failed");
}

#[tokio::test(start_paused = true)]
async fn a_child_stopping_with_its_manager_has_its_grace_period_not_its_heartbeat_timeout() {
    let manager = ProcessManager::builder().name("root").build();
    let child = manager
        .insert_with(beats_then_drains(), draining_options())
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(2_200)).await;

    let asked = Instant::now();
    handle.request_shutdown().expect("running");
    run.await.expect("joined").expect("no child failed");
    assert_eq!(asked.elapsed(), Duration::from_secs(3));
    assert!(matches!(child.outcome(), Some(Outcome::Stopped)));
}
