//! What a run's failure looks like to a person and to the operating system:
//! the report `main` prints (`RunError`'s `Debug`) and the exit status
//! (`RunError::exit_code`), forced shutdowns included.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use procmgr::{
    BoxError, FailureCause, ProcessManager, RunError, ShutdownReason, Signal, process_fn,
};
use tokio::sync::mpsc;

/// An error with a cause, like most errors a service sees.
#[derive(Debug)]
struct Wrapped {
    message: &'static str,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl Wrapped {
    fn new(message: &'static str) -> Self {
        Wrapped {
            message,
            source: None,
        }
    }

    fn because(message: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        Wrapped {
            message,
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|error| error as &(dyn Error + 'static))
    }
}

/// Runs a manager named `service` with one child `ingest` that fails with
/// `error` at once.
async fn failing_with(error: Wrapped) -> RunError {
    let manager = ProcessManager::builder().name("service").build();
    let error = std::sync::Mutex::new(Some(error));
    manager
        .insert(process_fn("ingest", move |_ctx| {
            let error = error.lock().expect("lock").take().expect("runs once");
            async move { Err::<(), _>(error) }
        }))
        .expect("accepted");
    manager.await.expect_err("ingest failed")
}

#[tokio::test(start_paused = true)]
async fn the_report_shows_the_path_the_error_and_its_causes() {
    let error = failing_with(Wrapped::because(
        "cannot reach the queue",
        Wrapped::because("connection refused", Wrapped::new("no route to host")),
    ))
    .await;
    assert_eq!(
        format!("{error:?}"),
        "process service/ingest failed\n\
         \n\
         Caused by:\n    \
             0: cannot reach the queue\n    \
             1: connection refused\n    \
             2: no route to host"
    );
    assert_eq!(error.to_string(), "process service/ingest failed");
}

#[tokio::test(start_paused = true)]
async fn a_single_cause_is_not_numbered_and_long_messages_stay_indented() {
    let error = failing_with(Wrapped::new("bad config:\nline 3: unknown key")).await;
    assert_eq!(
        format!("{error:?}"),
        "process service/ingest failed\n\
         \n\
         Caused by:\n    \
             bad config:\n    \
             line 3: unknown key"
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_lists_later_failures_one_line_each_with_their_causes() {
    let manager = ProcessManager::builder().name("service").build();
    manager
        .insert(process_fn("ingest", |_ctx| async {
            Err::<(), _>(Wrapped::because(
                "cannot reach the queue",
                Wrapped::new("connection refused"),
            ))
        }))
        .expect("accepted");
    manager
        .insert(process_fn("report", |ctx| async move {
            ctx.shutdown_requested().await;
            Err::<(), _>(Wrapped::because("cannot flush", Wrapped::new("disk full")))
        }))
        .expect("accepted");
    manager
        .insert(process_fn("cache", |ctx| async move {
            ctx.shutdown_requested().await;
            panic!("cache poisoned");
            #[allow(unreachable_code)]
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let error = manager.await.expect_err("ingest failed");
    let report = format!("{error:?}");
    let (head, later) = report
        .split_once("\n\nLater failures:\n")
        .expect("a section for the later failures");
    assert_eq!(
        head,
        "process service/ingest failed (and 2 later failures)\n\
         \n\
         Caused by:\n    \
             0: cannot reach the queue\n    \
             1: connection refused"
    );
    // The later failures come in the order the manager saw them, which
    // depends on task scheduling here; each is one line.
    let mut lines: Vec<&str> = later.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "    process service/cache panicked: cache poisoned",
            "    process service/report failed: cannot flush: disk full",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_survives_the_conversion_to_a_boxed_error() {
    let error = failing_with(Wrapped::because(
        "cannot reach the queue",
        Wrapped::new("connection refused"),
    ))
    .await;
    let report = format!("{error:?}");
    // What `?` in a `main` returning `Result<(), BoxError>` makes of it,
    // and what that `main` prints after `Error: `.
    let boxed: BoxError = error.into();
    assert_eq!(format!("{boxed:?}"), report);
}

#[tokio::test(start_paused = true)]
async fn the_alternate_debug_form_is_the_structure() {
    let error = failing_with(Wrapped::new("connection refused")).await;
    let dump = format!("{error:#?}");
    assert!(
        dump.starts_with("ChildFailed(\n    ChildFailures {"),
        "{dump}"
    );
    assert!(dump.contains("path: \"service/ingest\""), "{dump}");
    assert!(!dump.contains("Caused by"), "{dump}");
    assert_eq!(format!("{:#?}", RunError::AlreadyStarted), "AlreadyStarted");
}

#[tokio::test(start_paused = true)]
async fn a_child_failure_exits_with_one() {
    let error = failing_with(Wrapped::new("connection refused")).await;
    assert_eq!(error.exit_code(), ExitCode::FAILURE);
    assert_eq!(error.exit_code(), ExitCode::from(1));
}

#[test]
fn a_manager_run_twice_exits_with_one() {
    assert_eq!(RunError::AlreadyStarted.exit_code(), ExitCode::FAILURE);
    assert_eq!(
        format!("{:?}", RunError::AlreadyStarted),
        "process manager was already started"
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_after_the_grace_period_exits_with_one() {
    let manager = ProcessManager::builder()
        .name("service")
        .grace_period(Duration::from_secs(2))
        .build();
    manager
        .insert(process_fn("stuck", |_ctx| async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    let handle = manager.handle();
    handle
        .request_shutdown_with(ShutdownReason::Signal(Signal::Terminate))
        .expect("not ended");
    let error = manager.await.expect_err("stuck was aborted");
    assert_eq!(
        format!("{error:?}"),
        "process service/stuck was aborted after a grace period of 2s"
    );
    assert_eq!(error.exit_code(), ExitCode::FAILURE);
}

/// A tree whose `stuck` child ignores shutdown, stopped by a signal and then
/// forced by `force`; returns its error.
async fn forced_by(force: ShutdownReason) -> RunError {
    let manager = ProcessManager::builder()
        .name("service")
        .grace_period(Duration::from_secs(30))
        .build();
    let (stopping, mut stopped) = mpsc::unbounded_channel();
    manager
        .insert(process_fn("stuck", move |ctx| {
            let stopping = stopping.clone();
            async move {
                ctx.shutdown_requested().await;
                stopping.send(()).expect("test listens");
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    handle
        .request_shutdown_with(ShutdownReason::Signal(Signal::Interrupt))
        .expect("running");
    stopped.recv().await.expect("stuck saw the request");
    handle.force_shutdown(force).expect("still stopping");
    run.await.expect("joined").expect_err("stuck was aborted")
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_forced_by_a_second_signal_says_so_and_exits_with_three() {
    let error = forced_by(ShutdownReason::Forced(Signal::Interrupt)).await;
    let failure = error.failures().expect("failures").first();
    assert!(matches!(
        failure.cause(),
        FailureCause::Forced {
            signal: Some(Signal::Interrupt)
        }
    ));
    assert_eq!(
        format!("{error:?}"),
        "process service/stuck was aborted: SIGINT forced the shutdown"
    );
    assert_eq!(error.exit_code(), ExitCode::from(3));
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_forced_through_a_handle_says_so_and_exits_with_three() {
    let error = forced_by(ShutdownReason::Requested).await;
    let failure = error.failures().expect("failures").first();
    assert!(matches!(
        failure.cause(),
        FailureCause::Forced { signal: None }
    ));
    assert_eq!(
        error.to_string(),
        "process service/stuck was aborted: the shutdown was forced"
    );
    assert_eq!(error.exit_code(), ExitCode::from(3));
}

#[tokio::test(start_paused = true)]
async fn a_failure_then_a_forced_shutdown_exits_with_one_and_reports_both() {
    let manager = ProcessManager::builder()
        .name("service")
        .grace_period(Duration::from_secs(30))
        .build();
    let (stopping, mut stopped) = mpsc::unbounded_channel();
    manager
        .insert(process_fn("stuck", move |ctx| {
            let stopping = stopping.clone();
            async move {
                ctx.shutdown_requested().await;
                stopping.send(()).expect("test listens");
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            }
        }))
        .expect("accepted");
    manager
        .insert(process_fn("ingest", |_ctx| async {
            Err::<(), _>(Wrapped::new("connection refused"))
        }))
        .expect("accepted");
    let handle = manager.handle();
    let run = tokio::spawn(manager.into_future());
    stopped.recv().await.expect("stuck saw the stop");
    handle
        .force_shutdown(ShutdownReason::Forced(Signal::Terminate))
        .expect("still stopping");
    let error = run.await.expect("joined").expect_err("ingest failed");
    assert_eq!(
        format!("{error:?}"),
        "process service/ingest failed (and 1 later failure)\n\
         \n\
         Caused by:\n    \
             connection refused\n\
         \n\
         Later failures:\n    \
             process service/stuck was aborted: SIGTERM forced the shutdown"
    );
    assert_eq!(error.exit_code(), ExitCode::FAILURE);
}
