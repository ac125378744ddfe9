//! What the `metrics` feature records, through the `metrics` facade so that
//! any exporter (Prometheus, StatsD, OpenTelemetry) works.
//!
//! Each manager has one [`ManagerMetrics`]. Its handles are registered when
//! the manager's run starts, once its path is known, which registers the
//! counters at zero; after that, recording is a call on a handle, with no
//! key to build or look up. With no recorder installed the handles are the
//! facade's no-op ones.
//!
//! The `procmgr_children` gauge follows the children's stages: every stage
//! change goes through `Record::set_stage` or `Record::restage`, which call
//! [`ManagerMetrics::moved`] under the registry lock, and the manager's
//! phase change to stopping moves the running children to `stopping` in one
//! step. Counts are kept whether or not the handles exist yet, so children
//! inserted before the run are counted when it registers them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use tokio::time::Instant;

use super::events::Cause;
use super::registry::Stage;
use crate::control::ChildCore;

/// Which `state` label of `procmgr_children` a child counts under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Starting = 0,
    Running = 1,
    Restarting = 2,
}

impl Bucket {
    pub(crate) fn of(stage: &Stage) -> Option<Bucket> {
        match stage {
            Stage::Pending => Some(Bucket::Starting),
            Stage::Running(_) => Some(Bucket::Running),
            Stage::Backoff { .. } | Stage::Held { .. } => Some(Bucket::Restarting),
            Stage::Ended => None,
        }
    }
}

const CAUSES: [&str; 5] = ["error", "panic", "aborted", "wedged", "start_timeout"];
const STATES: [&str; 4] = ["starting", "running", "restarting", "stopping"];
const STOPPING: usize = 3;

#[derive(Default)]
pub(crate) struct ManagerMetrics {
    /// Children per bucket; changed only under the registry lock (atomics
    /// so that records can share this through an `Arc`).
    counts: [AtomicI64; 3],
    /// The manager is stopping: its running children count as `stopping`.
    stopping: AtomicBool,
    /// When shutdown was requested, for `procmgr_shutdown_duration_seconds`.
    stop_began: OnceLock<Instant>,
    handles: OnceLock<Handles>,
}

struct Handles {
    manager: String,
    per_child: bool,
    children: [Gauge; 4],
    starts: Counter,
    restarts: Counter,
    failures: [Counter; 5],
    aborts: Counter,
    slow_polls: Counter,
    shutdown: Histogram,
}

impl ManagerMetrics {
    /// Registers the manager's metrics under its path, the counters at zero
    /// (per child, they appear with each child's first event instead), and
    /// sets the gauge to the children already inserted. Under the registry
    /// lock, so that no stage changes meanwhile.
    pub(crate) fn register(&self, path: &str, per_child: bool) {
        let manager = path.to_owned();
        let per_manager = |name: &'static str| {
            let counter = counter!(name, "manager" => manager.clone());
            counter.absolute(0);
            counter
        };
        let child_counter = |name: &'static str| {
            if per_child {
                Counter::noop()
            } else {
                per_manager(name)
            }
        };
        let handles = Handles {
            children: STATES.map(
                |state| gauge!("procmgr_children", "manager" => manager.clone(), "state" => state),
            ),
            starts: child_counter("procmgr_child_starts_total"),
            restarts: child_counter("procmgr_restarts_total"),
            failures: CAUSES.map(|cause| {
                if per_child {
                    return Counter::noop();
                }
                let counter = counter!(
                    "procmgr_failures_total", "manager" => manager.clone(), "cause" => cause
                );
                counter.absolute(0);
                counter
            }),
            aborts: per_manager("procmgr_aborts_total"),
            slow_polls: child_counter("procmgr_slow_polls_total"),
            shutdown: histogram!("procmgr_shutdown_duration_seconds", "manager" => manager.clone()),
            manager,
            per_child,
        };
        let handles = self.handles.get_or_init(|| handles);
        let stopping = self.stopping.load(Ordering::Relaxed);
        for (bucket, count) in self.counts.iter().enumerate() {
            let count = count.load(Ordering::Relaxed) as f64;
            let shown = if bucket == Bucket::Running as usize && stopping {
                STOPPING
            } else {
                bucket
            };
            handles.children[shown].set(count);
        }
    }

    /// A child moved from one bucket to another (`None`: not counted, before
    /// its insert or after its end). Under the registry lock.
    pub(crate) fn moved(&self, from: Option<Bucket>, to: Option<Bucket>, core: &ChildCore) {
        if from == to {
            return;
        }
        let stopping = self.stopping.load(Ordering::Relaxed);
        let handles = self.handles.get();
        let shown = |bucket: Bucket| {
            if bucket == Bucket::Running && stopping {
                STOPPING
            } else {
                bucket as usize
            }
        };
        if let Some(from) = from {
            self.counts[from as usize].fetch_sub(1, Ordering::Relaxed);
            if let Some(handles) = handles {
                handles.children[shown(from)].decrement(1.0);
            }
        }
        if let Some(to) = to {
            self.counts[to as usize].fetch_add(1, Ordering::Relaxed);
            if let Some(handles) = handles {
                handles.children[shown(to)].increment(1.0);
            }
        }
        if to == Some(Bucket::Running) {
            // `begin_attempt` has already counted the new attempt.
            self.child_counter(core, "procmgr_child_starts_total", |h| &h.starts);
            if core.attempt() > 1 {
                self.child_counter(core, "procmgr_restarts_total", |h| &h.restarts);
            }
        }
    }

    /// The manager starts (or, abandoned, ends) stopping: its running
    /// children count as `stopping` from now on. Under the registry lock.
    pub(crate) fn set_stopping(&self, stopping: bool) {
        if self.stopping.swap(stopping, Ordering::Relaxed) == stopping {
            return;
        }
        if let Some(handles) = self.handles.get() {
            let running = self.counts[Bucket::Running as usize].load(Ordering::Relaxed) as f64;
            let (from, to) = if stopping {
                (Bucket::Running as usize, STOPPING)
            } else {
                (STOPPING, Bucket::Running as usize)
            };
            handles.children[from].decrement(running);
            handles.children[to].increment(running);
        }
    }

    /// Every record was dropped at once (an abandoned manager).
    pub(crate) fn cleared(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
        if let Some(handles) = self.handles.get() {
            for gauge in &handles.children {
                gauge.set(0.0);
            }
        }
    }

    pub(crate) fn failed(&self, core: &ChildCore, cause: Cause) {
        let Some(handles) = self.handles.get() else {
            return;
        };
        if handles.per_child {
            counter!(
                "procmgr_failures_total",
                "manager" => handles.manager.clone(),
                "cause" => CAUSES[cause as usize],
                "child" => core.name.to_string()
            )
            .increment(1);
        } else {
            handles.failures[cause as usize].increment(1);
        }
    }

    pub(crate) fn aborted(&self) {
        if let Some(handles) = self.handles.get() {
            handles.aborts.increment(1);
        }
    }

    pub(crate) fn slow_poll(&self, core: &ChildCore) {
        self.child_counter(core, "procmgr_slow_polls_total", |h| &h.slow_polls);
    }

    pub(crate) fn stop_began(&self) {
        // Err: the stop had begun already, and its start is what counts.
        let _ = self.stop_began.set(Instant::now());
    }

    /// The run ends: how long its shutdown took, if one was requested.
    pub(crate) fn finished(&self) {
        if let (Some(handles), Some(began)) = (self.handles.get(), self.stop_began.get()) {
            handles.shutdown.record(began.elapsed().as_secs_f64());
        }
    }

    fn child_counter(
        &self,
        core: &ChildCore,
        name: &'static str,
        own: impl FnOnce(&Handles) -> &Counter,
    ) {
        let Some(handles) = self.handles.get() else {
            return;
        };
        if handles.per_child {
            counter!(name, "manager" => handles.manager.clone(), "child" => core.name.to_string())
                .increment(1);
        } else {
            own(handles).increment(1);
        }
    }
}
