//! A tracing subscriber that panics when a child's span is exited, outside
//! the future procmgr catches panics in. Each test that installs it is a
//! binary of its own: a subscriber is process-wide, and each uses one of
//! the two constructors.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Panics on exits of a child's span (not the root manager's own span,
/// which is the awaiting task's business): on the first only, or on every
/// one. Never while unwinding already, which would abort the test.
pub(crate) struct PanicsOnExit {
    every: bool,
    fired: AtomicBool,
}

impl PanicsOnExit {
    /// On the first exit only, so that no panic follows another.
    pub(crate) fn first() -> Self {
        PanicsOnExit {
            every: false,
            fired: AtomicBool::new(false),
        }
    }

    /// On every exit, also the one when the task drops the instrumented
    /// future.
    pub(crate) fn every() -> Self {
        PanicsOnExit {
            every: true,
            fired: AtomicBool::new(false),
        }
    }
}

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
        if span.into_u64() != PROCESS || std::thread::panicking() {
            return;
        }
        let first = !self.fired.swap(true, Ordering::SeqCst);
        if first || self.every {
            panic!("subscriber broke");
        }
    }
}
