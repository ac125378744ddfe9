//! With the `log` feature the manager reports what its children do as log
//! records, and without it none. (Its own binary: a logger is
//! process-wide.)

mod common;

use common::{Captured, run_a_blocking_child, run_a_failing_tree, run_a_restarting_child};

mod log_records {
    use super::*;

    struct Logger(Captured);

    impl log::Log for Logger {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.0.lock().expect("lock").push(line);
        }
        fn flush(&self) {}
    }

    #[tokio::test(start_paused = true)]
    async fn log_records_cover_start_failure_and_stop() {
        let captured = Captured::default();
        log::set_logger(Box::leak(Box::new(Logger(captured.clone())))).expect("first logger");
        log::set_max_level(log::LevelFilter::Trace);
        run_a_failing_tree().await;
        run_a_blocking_child().await;
        run_a_restarting_child().await;
        let lines = captured.lines();
        if cfg!(feature = "log") {
            for expected in [
                "DEBUG process root/steady (id 0) started",
                "DEBUG process root/flaky (id 1) started",
                "ERROR process root/flaky (id 1) failed: broke",
                "INFO process manager root shutting down: process root/flaky failed",
                "DEBUG process root/steady (id 0) stopped",
            ] {
                assert!(
                    lines.iter().any(|l| l == expected),
                    "{expected:?} not in {lines:#?}"
                );
            }
            // A restart after a clean exit is no failure.
            let attempts: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("WARN process root/again (id 0) attempt "))
                .collect();
            assert_eq!(
                attempts,
                ["WARN process root/again (id 0) attempt failed: broke again"],
                "{lines:#?}"
            );
            for restart in [2, 3] {
                let expected = format!(
                    "INFO process root/again (id 0) restarting as attempt {restart} in 0ns"
                );
                assert!(lines.contains(&expected), "{expected:?} not in {lines:#?}");
            }
            let slow = "WARN process root/blocker (id 0) blocked its thread: one poll took ";
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(slow)
                        && l.ends_with("over its slow-poll threshold of 10ms")),
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
