//! Children that block the runtime: with a slow-poll threshold, a poll of a
//! child's future that takes longer is reported (an event, the tree view),
//! and an abort that has to wait for such a poll says so in the failure.
//!
//! These tests block threads for real (`std::thread::sleep`): tokio's paused
//! clock does not move while a thread blocks, and blocking is the subject.
//! Each blocks far longer than its threshold and asserts only lower bounds,
//! so a slow machine cannot fail them.

use std::time::Duration;

use procmgr::{ChildOptions, EventKind, FailureCause, ProcessManager, process_fn};

/// Blocks its thread for 50 ms in its first poll, then ends.
fn blocks_once() -> impl procmgr::Runnable {
    process_fn("blocker", |_ctx| async {
        std::thread::sleep(Duration::from_millis(50));
        tokio::task::yield_now().await;
        Ok::<_, std::io::Error>(())
    })
}

#[tokio::test]
async fn a_poll_over_the_threshold_is_an_event_and_shows_in_the_tree() {
    let manager = ProcessManager::builder()
        .name("root")
        .auto_cleanup(false)
        .build();
    manager
        .insert_with(
            blocks_once(),
            ChildOptions::new().slow_poll(Duration::from_millis(10)),
        )
        .expect("accepted");
    let handle = manager.handle();
    let mut events = handle.subscribe();
    manager.await.expect("clean run");

    let mut slow = Vec::new();
    while let Ok(event) = events.recv().await {
        if let EventKind::SlowPoll { took, threshold } = event.kind() {
            slow.push((event.path().to_owned(), *took, *threshold));
        }
    }
    assert_eq!(slow.len(), 1, "{slow:?}");
    let (path, took, threshold) = &slow[0];
    assert_eq!(path, "root/blocker");
    assert!(*took >= Duration::from_millis(50), "{took:?}");
    assert_eq!(*threshold, Duration::from_millis(10));

    let info = &handle.snapshot()[0];
    assert_eq!(info.slow_polls(), 1);
    assert!(info.longest_poll().expect("one slow poll") >= Duration::from_millis(50));
    assert!(info.to_string().contains(", 1 slow poll ("), "{info}");
}

#[tokio::test]
async fn polls_under_the_threshold_or_without_one_are_not_reported() {
    let manager = ProcessManager::builder()
        .name("root")
        .auto_cleanup(false)
        .build();
    manager
        .insert_with(
            blocks_once(),
            ChildOptions::new()
                .name("generous")
                .slow_poll(Duration::from_secs(5)),
        )
        .expect("accepted");
    manager
        .insert_with(blocks_once(), ChildOptions::new().name("unwatched"))
        .expect("accepted");
    let handle = manager.handle();
    let mut events = handle.subscribe();
    manager.await.expect("clean run");
    while let Ok(event) = events.recv().await {
        assert!(
            !matches!(event.kind(), EventKind::SlowPoll { .. }),
            "{event}"
        );
    }
    for info in handle.snapshot() {
        assert_eq!((info.slow_polls(), info.longest_poll()), (0, None));
    }
}

#[tokio::test]
async fn the_managers_threshold_applies_to_children_without_their_own() {
    let manager = ProcessManager::builder()
        .name("root")
        .auto_cleanup(false)
        .slow_poll(Duration::from_millis(10))
        .build();
    manager.insert(blocks_once()).expect("accepted");
    manager
        .insert_with(
            blocks_once(),
            ChildOptions::new()
                .name("own")
                .slow_poll(Duration::from_secs(5)),
        )
        .expect("accepted");
    let handle = manager.handle();
    manager.await.expect("clean run");
    let slow: Vec<_> = handle
        .snapshot()
        .iter()
        .map(|info| (info.name().to_owned(), info.slow_polls()))
        .collect();
    assert_eq!(slow, [("blocker".into(), 1), ("own".into(), 0)]);
}

// Two workers: the manager's loop runs on one while the child blocks the
// other, as in a service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_overruns_its_grace_period_because_a_child_blocks_says_so() {
    let manager = ProcessManager::builder()
        .name("root")
        .grace_period(Duration::from_millis(50))
        .slow_poll(Duration::from_millis(10))
        .build();
    manager
        .insert(process_fn("stuck", |ctx| async move {
            ctx.shutdown_requested().await;
            // Ignores the request and blocks its thread; the yield is where
            // the abort can finally take effect.
            loop {
                std::thread::sleep(Duration::from_millis(400));
                tokio::task::yield_now().await;
            }
            #[allow(unreachable_code)]
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(20)).await;
    handle.request_shutdown().expect("running");

    // The grace period is over, the abort is waiting for the poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let info = &handle.snapshot()[0];
    let blocking = info.blocking().expect("blocking right now");
    assert!(blocking >= Duration::from_millis(100), "{blocking:?}");
    assert!(info.to_string().contains("BLOCKING for"), "{info}");

    let error = run.await.expect("joined").expect_err("aborted");
    let failure = error.failures().expect("a child failure").first();
    assert!(
        matches!(failure.cause(), FailureCause::Aborted { grace } if *grace == Duration::from_millis(50)),
        "{failure}"
    );
    let blocked = failure.blocking_poll().expect("it did not yield");
    assert!(blocked >= Duration::from_millis(10), "{blocked:?}");
    assert!(
        failure.to_string().starts_with(
            "process root/stuck was aborted after a grace period of 50ms; it did not yield: one poll had blocked its thread for "
        ),
        "{failure}"
    );
}
