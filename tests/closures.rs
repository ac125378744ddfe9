//! The closure adapters: `process_fn` with a `procmgr::Result` annotation,
//! `process_fn_with`'s state handed to every attempt, and
//! `process_fn_once`, which moves what it captures and runs once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use procmgr::{
    Backoff, ChildOptions, Context, FailureCause, ProcessManager, Restart, RestartLimit,
    process_fn, process_fn_once, process_fn_with,
};
use tokio::sync::mpsc;

async fn fails_on_first_attempt(ctx: Context) -> procmgr::Result {
    if ctx.attempt() == 1 {
        // `?` boxes any error.
        Err(std::io::Error::other("first attempt"))?;
    }
    Ok(())
}

fn restart_once() -> ChildOptions {
    ChildOptions::new()
        .restart(Restart::OnFailure)
        .backoff(Backoff::none())
}

#[tokio::test(start_paused = true)]
async fn a_process_annotated_with_procmgr_result_needs_no_turbofish() {
    let manager = ProcessManager::new();
    let named = manager
        .insert_with(process_fn("fn", fails_on_first_attempt), restart_once())
        .expect("accepted");
    let closure = manager
        .insert(process_fn("closure", async |ctx| -> procmgr::Result {
            if ctx.attempt() > 1 {
                return Err("a closure never restarted".into());
            }
            Ok(())
        }))
        .expect("accepted");
    manager.await.expect("both end cleanly");
    assert_eq!(named.restarts(), 1, "its `?` failed the first attempt");
    assert_eq!(closure.restarts(), 0);
}

#[tokio::test(start_paused = true)]
async fn process_fn_with_hands_every_attempt_its_own_clone_of_the_state() {
    let starts = Arc::new(AtomicU32::new(0));
    let manager = ProcessManager::new();
    let child = manager
        .insert_with(
            process_fn_with("counted", Arc::clone(&starts), |starts, ctx| async move {
                starts.fetch_add(1, Ordering::SeqCst);
                fails_on_first_attempt(ctx).await
            }),
            restart_once(),
        )
        .expect("accepted");
    manager.await.expect("the second attempt ends cleanly");
    assert_eq!(child.restarts(), 1);
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(
        Arc::strong_count(&starts),
        1,
        "the child's clones went with it"
    );
}

#[tokio::test(start_paused = true)]
async fn process_fn_once_moves_what_it_captures_into_its_only_attempt() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    let (sum_tx, mut sum_rx) = mpsc::unbounded_channel::<u32>();
    let manager = ProcessManager::new();
    // Neither the receiver nor the sender is `Clone`-d: both move in.
    manager
        .insert(process_fn_once("summer", move |_ctx| async move {
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                sum += n;
            }
            sum_tx.send(sum)?;
            Ok(())
        }))
        .expect("accepted");
    for n in 1..=3 {
        tx.send(n).expect("the child listens");
    }
    drop(tx);
    manager.await.expect("clean end");
    assert_eq!(sum_rx.recv().await, Some(6));
}

#[tokio::test(start_paused = true)]
async fn a_process_fn_once_restarted_anyway_fails_saying_why() {
    let manager = ProcessManager::new();
    manager
        .insert_with(
            process_fn_once("once", |_ctx| async { Err("first attempt".into()) }),
            restart_once().restart_limit(RestartLimit::new(1, std::time::Duration::from_secs(60))),
        )
        .expect("accepted");
    let error = manager.await.expect_err("the second attempt fails too");
    let failure = error.failures().expect("a child failed").first();
    assert_eq!(failure.path(), "manager/once");
    let FailureCause::Error(cause) = failure.cause() else {
        panic!("not an error: {failure}");
    };
    assert_eq!(
        cause.to_string(),
        "`once` was made with process_fn_once and cannot run a second attempt"
    );
}
