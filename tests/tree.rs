//! Seeing the tree: per-child snapshots through every state, and the
//! `pstree`-like view of a nested tree.

use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, ChildState, IdleProcess, Jitter, ProcessManager, Restart, process_fn,
};

#[tokio::test(start_paused = true)]
async fn a_three_level_tree_draws_like_pstree() {
    let consumers = ProcessManager::builder().name("consumers").build();
    consumers
        .insert_with(
            process_fn("kafka-0", |ctx| async move {
                if ctx.attempt() <= 3 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err("broker down");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(2), Duration::from_secs(60))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    consumers
        .insert(
            process_fn("kafka-1", |ctx| async move {
                ctx.mark_ready();
                ctx.shutdown_requested().await;
                Ok::<_, std::io::Error>(())
            })
            .reporting_ready(),
        )
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    root.insert(
        process_fn("http", |ctx| async move {
            ctx.mark_ready();
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        })
        .reporting_ready(),
    )
    .expect("accepted");
    root.insert(consumers).expect("accepted");
    root.insert(IdleProcess).expect("accepted");
    let handle = root.handle();
    let run = tokio::spawn(root.into_future());

    // kafka-0: fails at 1 s, restarts at 3 s, fails at 4 s, restarts at
    // 8 s, fails at 9 s: waiting until 17 s.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert_eq!(
        handle.tree().to_string(),
        "\
root
├── http: ready, up 10.5s
├── consumers: ready, up 10.5s
│   ├── kafka-0: restarting in 6.5s, 2 restarts, last error: broker down
│   └── kafka-1: ready, up 10.5s
└── idle: ready, up 10.5s
"
    );
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_follows_a_child_through_its_states() {
    let manager = ProcessManager::builder()
        .name("root")
        .auto_cleanup(false)
        .grace_period(Duration::from_secs(5))
        .child(IdleProcess)
        .build();
    let child = manager
        .insert_with(
            process_fn("worker", |ctx| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if ctx.attempt() == 1 {
                    return Err("boom");
                }
                ctx.mark_ready();
                ctx.shutdown_requested().await;
                // Takes its time to stop.
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(())
            })
            .reporting_ready(),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(3), Duration::from_secs(3))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let state = |handle: &procmgr::ManagerHandle| {
        let snapshot = handle.snapshot();
        let info = snapshot
            .iter()
            .find(|info| info.id() == child.id())
            .expect("listed")
            .clone();
        (
            info.state().to_string(),
            info.restarts(),
            info.uptime(),
            info.last_error().map(str::to_owned),
        )
    };

    assert_eq!(state(&handle).0, "starting");
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        state(&handle),
        ("running".into(), 0, Some(Duration::from_millis(500)), None)
    );
    tokio::time::sleep(Duration::from_secs(1)).await; // failed at 1 s
    assert_eq!(
        state(&handle),
        ("restarting in 2.5s".into(), 0, None, Some("boom".into()))
    );
    tokio::time::sleep(Duration::from_secs(4)).await; // restarted at 4 s, ready at 5 s
    assert_eq!(
        state(&handle),
        (
            "ready".into(),
            1,
            Some(Duration::from_millis(1500)),
            Some("boom".into())
        )
    );
    handle.request_shutdown().expect("running");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(state(&handle).0, "stopping");
    run.await.expect("joined").expect("clean stop");
    assert_eq!(state(&handle).0, "ended (stopped)");
    assert!(matches!(
        handle.snapshot()[0].state(),
        ChildState::Ended(procmgr::Outcome::Stopped)
    ));
    assert_eq!(handle.snapshot()[1].path(), "root/worker");
}

/// Panics with `kaboom 42` after 1 s in its first attempt; later attempts
/// wait for shutdown.
fn panics_once() -> impl procmgr::Runnable {
    process_fn("worker", |ctx| async move {
        if ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("kaboom {}", 42);
        }
        ctx.shutdown_requested().await;
        Ok::<_, std::io::Error>(())
    })
}

fn last_error(handle: &procmgr::ManagerHandle) -> Option<String> {
    handle.snapshot()[0].last_error().map(str::to_owned)
}

#[tokio::test(start_paused = true)]
async fn a_panicked_childs_last_error_is_its_panic_message_through_its_restart() {
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            panics_once(),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(3), Duration::from_secs(3))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_secs(2)).await; // panicked at 1 s
    assert_eq!(last_error(&handle).as_deref(), Some("kaboom 42"));
    tokio::time::sleep(Duration::from_secs(3)).await; // restarted at 4 s
    assert_eq!(child.restarts(), 1);
    assert_eq!(last_error(&handle).as_deref(), Some("kaboom 42"));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_final_panic_stays_the_last_error_of_a_child_kept_after_it_ended() {
    let manager = ProcessManager::builder().auto_cleanup(false).build();
    manager.insert(panics_once()).expect("accepted");
    let handle = manager.handle();
    manager.await.expect_err("the panic is a failure");
    assert!(matches!(
        handle.snapshot()[0].state(),
        ChildState::Ended(procmgr::Outcome::Panicked(_))
    ));
    assert_eq!(last_error(&handle).as_deref(), Some("kaboom 42"));
}
