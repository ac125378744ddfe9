//! The first failure stops the tree: errors, panics, and the later failures
//! kept beside the first.

use std::time::Duration;

use procmgr::{
    Context, FailureCause, IdleProcess, Outcome, ProcessManager, RunError, Runnable, process_fn,
};

fn failing(name: &'static str, after: Duration) -> impl Runnable {
    process_fn(name, move |_ctx| async move {
        tokio::time::sleep(after).await;
        Err::<(), _>(std::io::Error::other(format!("{name} broke")))
    })
}

fn stops_when_asked(name: &'static str) -> impl Runnable {
    process_fn(name, |ctx| async move {
        ctx.shutdown_requested().await;
        Ok::<_, std::io::Error>(())
    })
}

#[tokio::test(start_paused = true)]
async fn a_failing_child_stops_its_siblings_and_the_error_names_it() {
    let manager = ProcessManager::builder().name("root").build();
    let sibling = manager
        .insert(stops_when_asked("steady"))
        .expect("accepted");
    let broken = manager
        .insert(failing("flaky", Duration::from_secs(1)))
        .expect("accepted");

    let error = manager.await.expect_err("a child failed");
    let RunError::ChildFailed(failures) = &error else {
        panic!("expected a child failure, got {error:?}");
    };
    assert_eq!(failures.first().path(), "root/flaky");
    assert_eq!(failures.first().id(), broken.id());
    assert!(failures.later().is_empty());
    assert_eq!(error.to_string(), "process root/flaky failed");
    let source = std::error::Error::source(&error).expect("the child's error");
    assert_eq!(source.to_string(), "flaky broke");

    assert!(matches!(sibling.outcome(), Some(Outcome::Stopped)));
    assert!(matches!(broken.outcome(), Some(Outcome::Failed(e)) if e.to_string() == "flaky broke"));
}

#[tokio::test(start_paused = true)]
async fn later_failures_are_kept_after_the_first() {
    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert(failing("first", Duration::from_secs(1)))
        .expect("accepted");
    // Fails while the tree is stopping because of the first failure.
    manager
        .insert(process_fn("second", |ctx| async move {
            ctx.shutdown_requested().await;
            Err::<(), _>(std::io::Error::other("could not flush"))
        }))
        .expect("accepted");

    let error = manager.await.expect_err("children failed");
    let failures = error.failures().expect("child failures");
    assert_eq!(failures.first().path(), "root/first");
    let later: Vec<_> = failures.later().iter().map(|f| f.path()).collect();
    assert_eq!(later, ["root/second"]);
    assert_eq!(failures.iter().count(), 2);
    assert_eq!(
        error.to_string(),
        "process root/first failed (and 1 later failure)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_child_is_a_failure_with_its_message() {
    let manager = ProcessManager::builder().name("root").build();
    let sibling = manager
        .insert(stops_when_asked("steady"))
        .expect("accepted");
    let panicking = manager
        .insert(process_fn("boom", |_ctx| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("kaboom {}", 42);
            #[allow(unreachable_code)]
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");

    let error = manager.await.expect_err("the panic is a failure");
    let failure = error.failures().expect("child failures").first();
    assert_eq!(failure.path(), "root/boom");
    assert!(matches!(failure.cause(), FailureCause::Panic(m) if m == "kaboom 42"));
    assert!(matches!(panicking.outcome(), Some(Outcome::Panicked(m)) if m == "kaboom 42"));
    assert!(matches!(sibling.outcome(), Some(Outcome::Stopped)));
}

/// Panics while creating its future, before any `.await`.
struct PanicsAtOnce;

impl Runnable for PanicsAtOnce {
    type Error = std::io::Error;

    #[allow(clippy::manual_async_fn)]
    fn run(&self, _ctx: Context) -> impl Future<Output = Result<(), Self::Error>> + Send {
        panic!("no future for you");
        #[allow(unreachable_code)]
        async {
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_the_first_await_is_contained() {
    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert(stops_when_asked("steady"))
        .expect("accepted");
    let child = manager.insert(PanicsAtOnce).expect("accepted");
    let error = manager.await.expect_err("the panic is a failure");
    let failure = error.failures().expect("child failures").first();
    assert_eq!(failure.path(), "root/PanicsAtOnce");
    assert!(matches!(failure.cause(), FailureCause::Panic(m) if m == "no future for you"));
    assert!(matches!(child.outcome(), Some(Outcome::Panicked(_))));
}

#[tokio::test(start_paused = true)]
async fn a_child_returning_ok_simply_ends() {
    let manager = ProcessManager::new();
    let steady = manager
        .insert(stops_when_asked("steady"))
        .expect("accepted");
    let done = manager
        .insert(process_fn("once", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());

    assert!(matches!(done.wait().await, Outcome::Completed));
    assert!(!steady.is_finished(), "a sibling's clean end stops nothing");
    assert!(!handle.is_finished());

    handle.shutdown().await;
    run.await.expect("joined").expect("clean stop");
    assert!(matches!(steady.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn any_error_type_converts() {
    #[derive(Debug)]
    struct MyError;
    impl std::fmt::Display for MyError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("my error")
        }
    }
    impl std::error::Error for MyError {}

    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert(process_fn("custom", |_ctx| async { Err::<(), _>(MyError) }))
        .expect("accepted");
    manager
        .insert(process_fn("text", |ctx| async move {
            ctx.shutdown_requested().await;
            Err::<(), _>("a plain string")
        }))
        .expect("accepted");
    let error = manager.await.expect_err("failed");
    let failures = error.failures().expect("child failures");
    let causes: Vec<String> = failures
        .iter()
        .map(|f| match f.cause() {
            FailureCause::Error(e) => e.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(causes, ["my error", "a plain string"]);
}

#[tokio::test(start_paused = true)]
async fn a_three_level_tree_reports_the_failing_leaf_with_its_full_path() {
    let leaf_manager = ProcessManager::builder().name("consumers").build();
    let leaf = leaf_manager
        .insert(failing("kafka-0", Duration::from_secs(2)))
        .expect("accepted");
    let leaf_sibling = leaf_manager
        .insert(stops_when_asked("kafka-1"))
        .expect("accepted");
    let middle = ProcessManager::builder().name("backend").build();
    let consumers = middle.insert(leaf_manager).expect("accepted");
    let root = ProcessManager::builder().name("root").build();
    let backend = root.insert(middle).expect("accepted");
    let http = root.insert(stops_when_asked("http")).expect("accepted");
    root.insert(IdleProcess).expect("accepted");

    let error = root.await.expect_err("the leaf failed");
    let failures = error.failures().expect("child failures");
    assert_eq!(failures.first().path(), "root/backend/consumers/kafka-0");
    assert_eq!(failures.later().len(), 0);
    assert_eq!(
        error.to_string(),
        "process root/backend/consumers/kafka-0 failed"
    );

    assert!(matches!(leaf.outcome(), Some(Outcome::Failed(_))));
    assert!(matches!(leaf_sibling.outcome(), Some(Outcome::Stopped)));
    assert!(matches!(consumers.outcome(), Some(Outcome::Failed(_))));
    assert!(matches!(backend.outcome(), Some(Outcome::Failed(_))));
    assert!(matches!(http.outcome(), Some(Outcome::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn running_the_same_manager_twice_is_an_error() {
    let shared = std::sync::Arc::new(
        ProcessManager::builder()
            .name("shared")
            .child(IdleProcess)
            .build(),
    );
    let root = ProcessManager::builder().name("root").build();
    let first = root
        .insert(std::sync::Arc::clone(&shared))
        .expect("accepted");
    let second = root
        .insert_with(shared, procmgr::ChildOptions::new().name("shared-again"))
        .expect("accepted");

    let error = root.await.expect_err("the second run fails");
    let failure = error.failures().expect("child failures").first();
    assert_eq!(failure.id(), second.id());
    assert!(matches!(
        failure.cause(),
        FailureCause::Error(e) if matches!(e.downcast_ref::<RunError>(), Some(RunError::AlreadyStarted))
    ));
    assert!(matches!(first.outcome(), Some(Outcome::Stopped)));
}
