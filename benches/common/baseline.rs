//! The baseline both benches measure procmgr against: what one would write
//! by hand with a `JoinSet` and a `CancellationToken`. `supervision.rs`
//! uses all of it; `kept.rs` only the parts a burst of inserts needs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use procmgr::BoxError;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The same grace period as procmgr's default: one timer, armed once
/// shutdown starts, after which what still runs is aborted.
const GRACE: Duration = procmgr::DEFAULT_GRACE_PERIOD;

/// A hand-written supervisor: a `JoinSet` of tasks that each hold a child
/// of one `CancellationToken`, fed through an unbounded channel while it
/// runs. It stops everything on the first error and returns that error,
/// unless it was given a restarter, which makes the task that replaces a
/// failed one. Generic over the one future type a scenario runs, so that
/// it boxes nothing.
pub(crate) struct Supervisor<F> {
    tasks: JoinSet<Result<(), BoxError>>,
    inserts: mpsc::UnboundedReceiver<F>,
    handle: Handle<F>,
    reaped: Arc<AtomicUsize>,
    restarter: Option<Restarter<F>>,
}

type Restarter<F> = Box<dyn FnMut(CancellationToken) -> F + Send>;

/// Inserts tasks into a running supervisor and stops it.
pub(crate) struct Handle<F> {
    inserts: mpsc::UnboundedSender<F>,
    token: CancellationToken,
}

impl<F> Clone for Handle<F> {
    fn clone(&self) -> Self {
        Handle {
            inserts: self.inserts.clone(),
            token: self.token.clone(),
        }
    }
}

impl<F> Handle<F> {
    /// Gives `make` a child token and sends the task it makes to the
    /// supervisor.
    pub(crate) fn insert(&self, make: impl FnOnce(CancellationToken) -> F) {
        if self.inserts.send(make(self.token.child_token())).is_err() {
            panic!("the baseline supervisor has stopped");
        }
    }

    pub(crate) fn request_shutdown(&self) {
        self.token.cancel();
    }
}

impl<F> Supervisor<F>
where
    F: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    pub(crate) fn new() -> Self {
        let (sender, inserts) = mpsc::unbounded_channel();
        Supervisor {
            tasks: JoinSet::new(),
            inserts,
            handle: Handle {
                inserts: sender,
                token: CancellationToken::new(),
            },
            reaped: Arc::new(AtomicUsize::new(0)),
            restarter: None,
        }
    }

    /// Restarts every task that fails, at once, with what `make` makes.
    pub(crate) fn restart_failed_with(
        mut self,
        make: impl FnMut(CancellationToken) -> F + Send + 'static,
    ) -> Self {
        self.restarter = Some(Box::new(make));
        self
    }

    pub(crate) fn handle(&self) -> Handle<F> {
        self.handle.clone()
    }

    /// How many tasks the supervisor has joined so far.
    pub(crate) fn reaped(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.reaped)
    }

    /// Spawns a task before the supervisor runs.
    pub(crate) fn spawn(&mut self, make: impl FnOnce(CancellationToken) -> F) {
        self.tasks.spawn(make(self.handle.token.child_token()));
    }

    /// Runs until every task has ended; returns the first error.
    pub(crate) async fn run(mut self) -> Result<(), BoxError> {
        let token = self.handle.token.clone();
        let mut first_error: Option<BoxError> = None;
        // Registered with the timer only once it is reset, when shutdown
        // starts; polled only from then on.
        let grace = tokio::time::sleep(GRACE);
        tokio::pin!(grace);
        let (mut stopping, mut aborted) = (false, false);
        loop {
            while let Ok(task) = self.inserts.try_recv() {
                self.tasks.spawn(task);
            }
            if self.tasks.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = token.cancelled(), if !stopping => {
                    stopping = true;
                    grace.as_mut().reset(Instant::now() + GRACE);
                }
                Some(task) = self.inserts.recv() => {
                    self.tasks.spawn(task);
                }
                Some(joined) = self.tasks.join_next() => {
                    self.reaped.fetch_add(1, Ordering::Relaxed);
                    let error = match joined {
                        Ok(Ok(())) => None,
                        Ok(Err(error)) => Some(error),
                        Err(join_error) => Some(Box::new(join_error) as BoxError),
                    };
                    let error = match (error, &mut self.restarter) {
                        (Some(_), Some(restart)) if !stopping => {
                            self.tasks.spawn(restart(token.child_token()));
                            None
                        }
                        (error, _) => error,
                    };
                    if let (Some(error), None) = (error, &first_error) {
                        first_error = Some(error);
                        token.cancel();
                    }
                }
                () = &mut grace, if stopping && !aborted => {
                    aborted = true;
                    self.tasks.abort_all();
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
