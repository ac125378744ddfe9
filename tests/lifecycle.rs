//! Lifecycle events: a subscription to everything that happens in a
//! manager's subtree, in order, that never slows the manager down.

use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, ControlMessage, EVENT_CAPACITY, Events, EventsError, IdleProcess,
    ProcessManager, Restart, process_fn,
};

/// Every event until the subscription ends, as text.
async fn drain(events: &mut Events) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match events.recv().await {
            Ok(event) => seen.push(event.to_string()),
            Err(EventsError::Ended) => return seen,
            Err(other) => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_fail_restart_stop_cycle_arrives_in_order() {
    let manager = ProcessManager::builder().name("root").build();
    let mut events = manager.handle().subscribe();
    manager
        .insert_with(
            process_fn("worker", |mut ctx| async move {
                if ctx.attempt() == 1 {
                    return Err("first attempt fails");
                }
                ctx.mark_ready();
                while let Some(message) = ctx.recv().await {
                    if matches!(message, ControlMessage::Shutdown) {
                        break;
                    }
                }
                Ok(())
            }),
            ChildOptions::new()
                .restart(Restart::OnFailure)
                .reports_ready(true)
                .backoff(
                    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1))
                        .jitter(procmgr::Jitter::None),
                ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.request_reload().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");

    assert_eq!(
        drain(&mut events).await,
        [
            "root/worker: started (attempt 1)",
            "root/worker: failed: first attempt fails",
            "root/worker: restarting as attempt 2 in 100ms",
            "root/worker: started (attempt 2)",
            "root/worker: ready",
            "root/worker: reload delivered",
            "root: shutting down: requested through a handle",
            "root/worker: ended: stopped",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_published_with_its_message_before_the_restart() {
    let manager = ProcessManager::builder().name("root").build();
    let mut events = manager.handle().subscribe();
    manager
        .insert_with(
            process_fn("worker", |ctx| async move {
                if ctx.attempt() == 1 {
                    panic!("kaboom {}", 42);
                }
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1))
                    .jitter(procmgr::Jitter::None),
            ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");

    assert_eq!(
        drain(&mut events).await,
        [
            "root/worker: started (attempt 1)",
            "root/worker: panicked: kaboom 42",
            "root/worker: restarting as attempt 2 in 100ms",
            "root/worker: started (attempt 2)",
            "root: shutting down: requested through a handle",
            "root/worker: ended: stopped",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn events_of_nested_managers_reach_the_root_with_full_paths() {
    let nested = ProcessManager::builder().name("inner").build();
    let mut inner_events = nested.handle().subscribe();
    nested
        .insert(process_fn("deep", |_ctx| async {
            Err::<(), _>("deep trouble")
        }))
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let mut events = root.handle().subscribe();
    root.insert(nested).expect("accepted");
    root.insert(IdleProcess).expect("accepted");
    assert!(root.await.is_err());

    let seen = drain(&mut events).await;
    for expected in [
        "root/inner: started (attempt 1)",
        "root/inner/deep: started (attempt 1)",
        "root/inner/deep: failed: deep trouble",
        "root/inner/deep: ended: failed: deep trouble",
        "root/inner: ended: failed: process root/inner/deep failed",
        "root: shutting down: process root/inner/deep failed",
        "root/idle: ended: stopped",
    ] {
        assert!(
            seen.iter().any(|line| line == expected),
            "{expected:?} not in {seen:#?}"
        );
    }
    // The nested manager's own subscription sees its subtree only.
    let inner = drain(&mut inner_events).await;
    assert!(
        inner.iter().all(|line| line.starts_with("root/inner")),
        "{inner:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_never_reads_does_not_slow_the_manager_and_learns_what_it_missed() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    let mut events = manager.handle().subscribe();
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    // Far more events than the subscription keeps, none read meanwhile.
    let children = EVENT_CAPACITY * 2;
    for _ in 0..children {
        let child = handle
            .insert(process_fn("short", |_ctx| async {
                Ok::<_, std::io::Error>(())
            }))
            .expect("running");
        child.wait().await;
    }
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");

    let missed = match events.recv().await {
        Err(EventsError::Lagged(missed)) => missed,
        other => panic!("expected a lag, got {other:?}"),
    };
    // Each short child made two events (started, ended), plus the idle
    // child's three (started, ready, ended) and the manager's own.
    let kept = drain(&mut events).await.len() as u64;
    assert_eq!(missed + kept, (children as u64) * 2 + 4);
    assert_eq!(kept, EVENT_CAPACITY as u64);
}

#[tokio::test(start_paused = true)]
async fn a_subscription_made_after_the_end_ends_at_once() {
    let manager = ProcessManager::new();
    let handle = manager.handle();
    manager.await.expect("nothing to run");
    let mut events = handle.subscribe();
    assert_eq!(events.recv().await.expect_err("ended"), EventsError::Ended);
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_keeps_running_stays_up_empty_until_asked_to_stop() {
    let pool = ProcessManager::builder()
        .name("pool")
        .keep_running(true)
        .build();
    let handle = pool.handle();
    let run = tokio::spawn(pool.into_future());
    let job = handle
        .insert(process_fn("job", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("running");
    assert!(matches!(job.wait().await, procmgr::Outcome::Completed));
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert!(!handle.is_finished(), "an empty pool runs on");
    let next = handle
        .insert(process_fn("next", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("an empty pool still takes children");
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(next.outcome(), Some(procmgr::Outcome::Stopped)));
}
