//! A tracing subscriber that panics on every exit of a child's span, also
//! the exit when the task drops the instrumented future, outside the
//! `catch_unwind` procmgr polls it in: the child still fails as panicked,
//! never ends as aborted (its own binary: the subscriber is process-wide).

#![cfg(feature = "tracing")]

#[path = "common/panics_on_exit.rs"]
mod panics_on_exit;

use panics_on_exit::PanicsOnExit;
use procmgr::{FailureCause, Outcome, ProcessManager, process_fn};

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_panics_on_every_exit_fails_the_child_as_panicked() {
    tracing::subscriber::set_global_default(PanicsOnExit::every()).expect("first subscriber");
    let manager = ProcessManager::builder().name("root").build();
    let child = manager
        .insert(process_fn("worker", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let error = manager.await.expect_err("the panic is a failure");
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/worker");
    assert!(
        matches!(failure.cause(), FailureCause::Panic(_)),
        "{:?}",
        failure.cause()
    );
    assert!(
        matches!(child.outcome(), Some(Outcome::Panicked(_))),
        "{:?}",
        child.outcome()
    );
}
