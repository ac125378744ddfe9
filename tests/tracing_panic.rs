//! A tracing subscriber that panics when a child's span is exited, outside
//! the future procmgr catches panics in, fails that child instead of losing
//! it (its own binary: the subscriber is process-wide).

#![cfg(feature = "tracing")]

use std::sync::atomic::{AtomicBool, Ordering};

use procmgr::{FailureCause, Outcome, ProcessManager, process_fn};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Panics on the first exit of a child's span only (not the root manager's
/// own span, which is the awaiting task's business), so that no panic
/// follows another.
struct PanicsOnExit(AtomicBool);

/// The id given to every child's span.
const PROCESS: u64 = 2;

impl Subscriber for PanicsOnExit {
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
        if span.into_u64() == PROCESS && !self.0.swap(true, Ordering::SeqCst) {
            panic!("subscriber broke");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_subscriber_fails_the_child_instead_of_losing_it() {
    tracing::subscriber::set_global_default(PanicsOnExit(AtomicBool::new(false)))
        .expect("first subscriber");
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
