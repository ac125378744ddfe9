//! A tracing subscriber that panics when a child's span is exited, outside
//! the future procmgr catches panics in, fails that child instead of losing
//! it (its own binary: the subscriber is process-wide).

#![cfg(feature = "tracing")]

#[path = "common/panics_on_exit.rs"]
mod panics_on_exit;

use panics_on_exit::PanicsOnExit;
use procmgr::{FailureCause, Outcome, ProcessManager, process_fn};

#[tokio::test(start_paused = true)]
async fn a_panicking_subscriber_fails_the_child_instead_of_losing_it() {
    tracing::subscriber::set_global_default(PanicsOnExit::first()).expect("first subscriber");
    let manager = ProcessManager::builder().name("root").build();
    let child = manager
        .insert(process_fn("worker", |_ctx| async {
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let error = manager.await.expect_err("the panic is a failure");
    let failure = error.failures().expect("failures").first();
    assert_eq!(failure.path(), "root/worker");
    assert!(matches!(failure.cause(), FailureCause::Panic(m) if m == "subscriber broke"));
    assert!(matches!(child.outcome(), Some(Outcome::Panicked(_))));
}
