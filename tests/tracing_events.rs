//! With the `tracing` feature every child runs in a span of its own and the
//! manager reports what its children do as events; without it there are
//! none. (Its own binary: the subscriber is process-wide.)

mod common;

use std::sync::Mutex;

use common::{Captured, run_a_blocking_child, run_a_failing_tree, run_a_restarting_child};

mod tracing_events {
    use super::*;
    use std::fmt::Write as _;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }

    struct Recorder {
        captured: Captured,
        next_id: Mutex<u64>,
    }

    impl Subscriber for Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut fields = Fields(format!("span {}", span.metadata().name()));
            span.record(&mut fields);
            self.captured.0.lock().expect("lock").push(fields.0);
            let mut next = self.next_id.lock().expect("lock");
            *next += 1;
            Id::from_u64(*next)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(format!("{}", event.metadata().level()));
            event.record(&mut fields);
            self.captured.0.lock().expect("lock").push(fields.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[tokio::test(start_paused = true)]
    async fn one_span_per_child_and_events_for_start_failure_and_stop() {
        let captured = Captured::default();
        let subscriber = Recorder {
            captured: captured.clone(),
            next_id: Mutex::new(0),
        };
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        run_a_failing_tree().await;
        run_a_blocking_child().await;
        run_a_restarting_child().await;
        let lines = captured.lines();
        if cfg!(feature = "tracing") {
            for expected in [
                "span process name=steady id=0 path=root/steady attempt=1",
                "span process name=flaky id=1 path=root/flaky attempt=1",
                "DEBUG message=process started path=root/steady id=0",
                "ERROR message=process failed path=root/flaky id=1 error=broke",
                "INFO message=process manager shutting down path=root reason=process root/flaky failed",
                "DEBUG message=process ended path=root/steady id=0 outcome=stopped",
            ] {
                assert!(
                    lines.iter().any(|l| l == expected),
                    "{expected:?} not in {lines:#?}"
                );
            }
            // A restart after a clean exit is no failure.
            let attempts: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("WARN message=process attempt failed path=root/again "))
                .collect();
            assert_eq!(
                attempts,
                [
                    "WARN message=process attempt failed path=root/again id=0 outcome=failed: broke again"
                ],
                "{lines:#?}"
            );
            let slow = "WARN message=process blocked its thread: one poll took longer than its slow-poll threshold path=root/blocker id=0 took=";
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(slow) && l.ends_with("threshold=10ms")),
                "{slow:?} not in {lines:#?}"
            );
        } else {
            assert!(
                lines.is_empty(),
                "silent without the feature, got {lines:#?}"
            );
        }
    }
}
