//! What several test files share: a small tree that fails for the log and
//! tracing tests, a place to collect what they saw, and a way to run a
//! scenario that may deadlock so that the deadlock fails the test.
//!
//! Each test file uses only part of this module.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use procmgr::{Context, ProcessManager, Runnable, process_fn};
use tokio::sync::mpsc;

/// Runs `root` with a child that waits for shutdown (`steady`) and one that
/// fails at once (`flaky`).
pub(crate) async fn run_a_failing_tree() {
    let manager = ProcessManager::builder().name("root").build();
    manager
        .insert(process_fn("steady", |ctx| async move {
            ctx.shutdown_requested().await;
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    manager
        .insert(process_fn("flaky", |_ctx| async { Err::<(), _>("broke") }))
        .expect("accepted");
    assert!(manager.await.is_err());
}

/// Runs `again`, restarted whenever it ends: its first attempt exits
/// cleanly, its second fails, its third stops the tree.
pub(crate) async fn run_a_restarting_child() {
    let manager = ProcessManager::builder().name("root").build();
    let handle = manager.handle();
    manager
        .insert_with(
            process_fn("again", move |ctx| {
                let handle = handle.clone();
                async move {
                    match ctx.attempt() {
                        1 => Ok(()),
                        2 => Err("broke again"),
                        _ => {
                            handle.request_shutdown().expect("running");
                            ctx.shutdown_requested().await;
                            Ok(())
                        }
                    }
                }
            }),
            procmgr::ChildOptions::new()
                .restart(procmgr::Restart::Always)
                .backoff(procmgr::Backoff::none()),
        )
        .expect("accepted");
    manager.await.expect("clean run");
}

/// Runs `root` with a child that blocks its thread for 50 ms in one poll,
/// against a slow-poll threshold of 10 ms.
pub(crate) async fn run_a_blocking_child() {
    let manager = ProcessManager::builder()
        .name("root")
        .slow_poll(Duration::from_millis(10))
        .build();
    manager
        .insert(process_fn("blocker", |_ctx| async {
            std::thread::sleep(Duration::from_millis(50));
            Ok::<_, std::io::Error>(())
        }))
        .expect("accepted");
    manager.await.expect("clean run");
}

/// Lines collected by a test logger or subscriber.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<String>>>);

impl Captured {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

/// A child that waits for shutdown, then returns `Ok`.
pub(crate) fn stops_when_asked(name: &'static str) -> impl Runnable {
    process_fn(name, |ctx| async move {
        ctx.shutdown_requested().await;
        Ok::<_, std::io::Error>(())
    })
}

/// The test's end of a [`probed`] child: each [`ask`](Probe::ask) makes the
/// child look at its context once, at a moment the test chooses.
pub(crate) struct Probe<T> {
    pokes: mpsc::UnboundedSender<()>,
    answers: mpsc::UnboundedReceiver<T>,
}

impl<T> Probe<T> {
    /// Has the child run its `look` now and returns what it saw.
    pub(crate) async fn ask(&mut self) -> T {
        self.pokes.send(()).expect("the child listens");
        self.answers.recv().await.expect("the child answers")
    }
}

/// A child that does nothing but run `look` on its context each time the
/// test asks through the returned [`Probe`]; it returns `Ok` once the probe
/// is dropped. Runs once: a restart would find no one to answer.
pub(crate) fn probed<T: Send + 'static>(
    name: &'static str,
    look: fn(&mut Context) -> T,
) -> (impl Runnable, Probe<T>) {
    let (pokes, poked) = mpsc::unbounded_channel();
    let (answer, answers) = mpsc::unbounded_channel();
    let poked = Mutex::new(Some(poked));
    let child = process_fn(name, move |mut ctx| {
        let poked = poked.lock().expect("lock").take();
        let answer = answer.clone();
        async move {
            let mut poked = poked.expect("runs once");
            while poked.recv().await.is_some() {
                answer.send(look(&mut ctx)).expect("the test listens");
            }
            Ok::<_, std::io::Error>(())
        }
    });
    (child, Probe { pokes, answers })
}

/// Runs `scenario` on a thread of its own, on a current-thread runtime with
/// paused time, and panics with `deadlock` if it has not finished within
/// `limit` of real time; a panic inside `scenario` is passed on.
///
/// A deadlock on a `std::sync::Mutex` blocks its thread for good, which no
/// tokio timeout can interrupt; this way it fails the test instead of
/// hanging it (the blocked thread is left behind).
pub(crate) fn run_on_its_own_thread<F, Fut>(limit: Duration, deadlock: &str, scenario: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(scenario());
        // The test may have given up waiting.
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{deadlock}"),
    }
}
