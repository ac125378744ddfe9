//! Readiness of the tree: the manager is ready when every child that reports
//! readiness is, nested managers included, and a restart makes it unready
//! again until the new attempt says it is ready.

use std::time::Duration;

use procmgr::{
    Backoff, ChildOptions, IdleProcess, ProcessControlHandler, ProcessManager, Restart, Runnable,
    process_fn,
};
use tokio::time::Instant;

/// Ready after `after`; fails once, right after being ready, if `flaky`.
fn readies(name: &'static str, after: Duration, flaky: bool) -> impl Runnable {
    process_fn(name, move |ctx| async move {
        tokio::time::sleep(after).await;
        ctx.mark_ready();
        if flaky && ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return Err("lost the connection");
        }
        ctx.shutdown_requested().await;
        Ok(())
    })
}

fn counted() -> ChildOptions {
    ChildOptions::new().reports_ready(true)
}

#[tokio::test(start_paused = true)]
async fn the_manager_is_ready_once_every_reporting_child_is() {
    let manager = ProcessManager::new();
    manager
        .insert_with(readies("db", Duration::from_secs(1), false), counted())
        .expect("accepted");
    manager
        .insert_with(readies("http", Duration::from_secs(3), false), counted())
        .expect("accepted");
    // Does not report readiness, so it does not count.
    manager.insert(IdleProcess).expect("accepted");
    let handle = manager.handle();
    assert!(!handle.is_ready());
    let started = Instant::now();
    let run = tokio::spawn(manager.into_future());

    handle.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert!(handle.is_ready());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_restart_makes_the_manager_unready_until_the_new_attempt_is_ready() {
    let manager = ProcessManager::new();
    manager
        .insert_with(
            readies("consumer", Duration::from_secs(2), true),
            counted().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(1), Duration::from_secs(1))
                    .jitter(procmgr::Jitter::None),
            ),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await; // at 2 s
    tokio::time::sleep(Duration::from_secs(11)).await; // failed at 12 s, backoff until 13 s
    assert!(!handle.is_ready(), "restarting");
    let waiting = Instant::now();
    handle.ready().await; // ready again at 13 + 2 = 15 s
    assert_eq!(waiting.elapsed(), Duration::from_secs(2));
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_nested_manager_is_ready_when_its_children_are() {
    let nested = ProcessManager::builder().name("inner").build();
    nested
        .insert_with(readies("deep", Duration::from_secs(5), false), counted())
        .expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let inner = root.insert(nested).expect("accepted");
    root.insert_with(readies("top", Duration::from_secs(1), false), counted())
        .expect("accepted");
    let handle = root.handle();
    let started = Instant::now();
    let run = tokio::spawn(root.into_future());
    handle.ready().await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(inner.is_ready());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ends_before_it_is_ready_no_longer_holds_readiness_back() {
    let manager = ProcessManager::builder().child(IdleProcess).build();
    manager
        .insert_with(
            process_fn("oneshot", |_ctx| async { Ok::<_, std::io::Error>(()) }),
            counted(),
        )
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle.ready().await;
    assert!(handle.is_ready());
    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
}
