//! With the `metrics` feature every manager records its children through
//! the `metrics` facade: the exact names, labels and values after a scripted
//! run, read with `metrics-util`'s debugging recorder. (Its own binary, and
//! one test: the recorder is process-wide.)
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use procmgr::{Backoff, ChildOptions, Jitter, ProcessManager, Restart, process_fn};

/// What the recorder has seen so far, as `name{label=value,...}` to value
/// (a histogram: how many samples it has, the samples kept beside). The debugging recorder hands out what
/// changed since its last snapshot, so this adds the snapshots up.
struct Seen {
    snapshotter: Snapshotter,
    totals: BTreeMap<String, f64>,
    samples: BTreeMap<String, Vec<f64>>,
}

impl Seen {
    fn install() -> Seen {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder");
        Seen {
            snapshotter,
            totals: BTreeMap::new(),
            samples: BTreeMap::new(),
        }
    }

    /// Every series of the manager `manager`, with its value now.
    fn of(&mut self, manager: &str) -> BTreeMap<String, f64> {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let mut labels: Vec<String> = key
                .key()
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
            match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(delta)) => {
                    *self.totals.entry(name).or_default() += delta as f64;
                }
                (MetricKind::Gauge, DebugValue::Gauge(delta)) => {
                    *self.totals.entry(name).or_default() += delta.0;
                }
                (MetricKind::Histogram, DebugValue::Histogram(values)) => {
                    let samples = self.samples.entry(name.clone()).or_default();
                    samples.extend(values.iter().map(|value| value.0));
                    self.totals.insert(name, samples.len() as f64);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let label = format!("manager={manager}");
        self.totals
            .iter()
            .filter(|(name, _)| name.contains(&label))
            .map(|(name, value)| (name.clone(), *value))
            .collect()
    }
}

/// Series and their values, keyed as [`Seen`] keys them.
fn series(values: &[(&str, f64)]) -> BTreeMap<String, f64> {
    values
        .iter()
        .map(|(name, value)| ((*name).to_owned(), *value))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_scripted_run_records_exact_names_labels_and_values() {
    let mut seen = Seen::install();

    // flaky: fails at 1 s and 4 s, restarted 2 s later each time, then
    // runs until shutdown. panicky: panics at 1 s and is let go. stuck:
    // ignores shutdown and is aborted after the grace period of 1 s.
    let manager = ProcessManager::builder()
        .name("m")
        .grace_period(Duration::from_secs(1))
        .build();
    manager
        .insert_with(
            process_fn("flaky", |ctx| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if ctx.attempt() <= 2 {
                    return Err("boom");
                }
                ctx.shutdown_requested().await;
                Ok(())
            }),
            ChildOptions::new().restart(Restart::OnFailure).backoff(
                Backoff::exponential(Duration::from_secs(2), Duration::from_secs(2))
                    .jitter(Jitter::None),
            ),
        )
        .expect("accepted");
    manager
        .insert_with(
            process_fn("panicky", |_ctx| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                panic!("kaboom");
                #[allow(unreachable_code)]
                Ok::<_, std::io::Error>(())
            }),
            ChildOptions::new().escalate(false),
        )
        .expect("accepted");
    manager
        .insert(process_fn("stuck", |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    // Counted per child, by name, for this one.
    let pool = ProcessManager::builder()
        .name("pool")
        .metrics_per_child(true)
        .build();
    pool.insert(process_fn("job", |_ctx| async {
        Ok::<_, std::io::Error>(())
    }))
    .expect("accepted");

    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected = |running, restarting, stopping, starts, restarts, errors, panics| {
        series(&[
            ("procmgr_aborts_total{manager=m}", 0.0),
            ("procmgr_child_starts_total{manager=m}", starts),
            ("procmgr_children{manager=m,state=restarting}", restarting),
            ("procmgr_children{manager=m,state=running}", running),
            ("procmgr_children{manager=m,state=starting}", 0.0),
            ("procmgr_children{manager=m,state=stopping}", stopping),
            ("procmgr_failures_total{cause=aborted,manager=m}", 0.0),
            ("procmgr_failures_total{cause=error,manager=m}", errors),
            ("procmgr_failures_total{cause=panic,manager=m}", panics),
            ("procmgr_failures_total{cause=start_timeout,manager=m}", 0.0),
            ("procmgr_failures_total{cause=wedged,manager=m}", 0.0),
            ("procmgr_restarts_total{manager=m}", restarts),
            ("procmgr_shutdown_duration_seconds{manager=m}", 0.0),
            ("procmgr_slow_polls_total{manager=m}", 0.0),
        ])
    };
    // Registered at zero when the manager started; three children run.
    assert_eq!(seen.of("m"), expected(3.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0));

    tokio::time::sleep(Duration::from_secs(2)).await; // 2.5 s
    assert_eq!(seen.of("m"), expected(1.0, 1.0, 0.0, 3.0, 0.0, 1.0, 1.0));

    tokio::time::sleep(Duration::from_secs(5)).await; // 7.5 s: restarted twice
    assert_eq!(seen.of("m"), expected(2.0, 0.0, 0.0, 5.0, 2.0, 2.0, 1.0));

    handle.request_shutdown().expect("running");
    tokio::time::sleep(Duration::from_millis(500)).await; // flaky stopped
    assert_eq!(seen.of("m"), expected(0.0, 0.0, 1.0, 5.0, 2.0, 2.0, 1.0));

    let error = run.await.expect("joined").expect_err("stuck was aborted");
    assert_eq!(
        error.failures().expect("failures").first().path(),
        "m/stuck"
    );
    let mut after = expected(0.0, 0.0, 0.0, 5.0, 2.0, 2.0, 1.0);
    after.insert("procmgr_aborts_total{manager=m}".into(), 1.0);
    after.insert(
        "procmgr_failures_total{cause=aborted,manager=m}".into(),
        1.0,
    );
    after.insert("procmgr_shutdown_duration_seconds{manager=m}".into(), 1.0);
    assert_eq!(seen.of("m"), after);
    assert_eq!(
        seen.samples["procmgr_shutdown_duration_seconds{manager=m}"],
        [1.0],
        "one shutdown, as long as the grace period"
    );

    pool.await.expect("clean run");
    assert_eq!(
        seen.of("pool"),
        series(&[
            ("procmgr_aborts_total{manager=pool}", 0.0),
            ("procmgr_child_starts_total{child=job,manager=pool}", 1.0),
            ("procmgr_children{manager=pool,state=restarting}", 0.0),
            ("procmgr_children{manager=pool,state=running}", 0.0),
            ("procmgr_children{manager=pool,state=starting}", 0.0),
            ("procmgr_children{manager=pool,state=stopping}", 0.0),
            ("procmgr_shutdown_duration_seconds{manager=pool}", 0.0),
        ])
    );

    // Stopped through its own handle, ignoring the stop, and aborted after
    // its grace period: an abort, but no failure (it was asked to stop).
    let quiet = ProcessManager::builder()
        .name("h")
        .grace_period(Duration::from_secs(1))
        .build();
    quiet
        .insert(process_fn("keeper", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let deaf = quiet
        .insert(process_fn("deaf", |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let quiet_handle = quiet.handle();
    let quiet_run = tokio::spawn(quiet.into_future());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(matches!(deaf.shutdown().await, procmgr::Outcome::Aborted));
    quiet_handle.request_shutdown().expect("running");
    let result = quiet_run.await.expect("joined");
    let after = seen.of("h");
    assert_eq!(after["procmgr_aborts_total{manager=h}"], 1.0);
    assert_eq!(
        after["procmgr_failures_total{cause=aborted,manager=h}"], 0.0,
        "{after:?}"
    );
    assert!(result.is_ok(), "{result:?}");
}
