//! What the log and tracing tests share: a small tree that fails, and a
//! place to collect what the logger or subscriber saw.

use std::sync::{Arc, Mutex};

use procmgr::{ProcessManager, process_fn};

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

/// Lines collected by a test logger or subscriber.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<String>>>);

impl Captured {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}
