//! A tracing subscriber that panics on every exit of a child's span, also
//! the exit when the task drops the instrumented future, outside the
//! `catch_unwind` procmgr polls it in: the child still fails as panicked,
//! never ends as aborted (its own binary: the subscriber is process-wide).

#![cfg(feature = "tracing")]

use procmgr::{FailureCause, Outcome, ProcessManager, process_fn};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Panics on every exit of a child's span (not the root manager's own).
struct PanicsOnEveryExit;

/// The id given to every child's span.
const PROCESS: u64 = 2;

impl Subscriber for PanicsOnEveryExit {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        Id::from_u64(if span.metadata().name() == "process" {
            PROCESS
        } else {
            1
        })
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, span: &Id) {
        // Not while unwinding already: a second panic would abort the test.
        if span.into_u64() == PROCESS && !std::thread::panicking() {
            panic!("subscriber broke");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_panics_on_every_exit_fails_the_child_as_panicked() {
    tracing::subscriber::set_global_default(PanicsOnEveryExit).expect("first subscriber");
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
