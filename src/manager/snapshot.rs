//! Snapshots of what a manager runs: [`ChildInfo`] per child and
//! [`TreeSnapshot`], which walks nested managers and draws like `pstree`.

use std::fmt;
use std::time::Duration;

use crate::control::Outcome;

/// Where a child is in its life, at the moment of a snapshot.
///
/// # Example
///
/// ```
/// use procmgr::{ChildState, IdleProcess, ProcessManager};
///
/// let manager = ProcessManager::new();
/// manager.insert(IdleProcess)?;
/// for child in manager.handle().snapshot() {
///     match child.state() {
///         ChildState::Starting => println!("{} has not started yet", child.name()),
///         ChildState::Restarting { in_: Some(delay) } => {
///             println!("{} restarts in {delay:?}", child.name());
///         }
///         other => println!("{}: {other}", child.name()),
///     }
/// }
/// # Ok::<_, procmgr::BoxError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ChildState {
    /// Accepted, not started yet.
    Starting,
    /// Running, and has not said it is ready (or does not).
    Running,
    /// Running and said it is ready.
    Ready,
    /// Asked to stop, not ended yet.
    Stopping,
    /// Waiting to start again; `in_` is the time left, `None` while it waits
    /// for siblings restarted with it.
    Restarting {
        /// Time until the next attempt starts.
        in_: Option<Duration>,
    },
    /// Ended for good (listed only with auto-cleanup off).
    Ended(Outcome),
}

impl fmt::Display for ChildState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildState::Starting => f.write_str("starting"),
            ChildState::Running => f.write_str("running"),
            ChildState::Ready => f.write_str("ready"),
            ChildState::Stopping => f.write_str("stopping"),
            ChildState::Restarting { in_: Some(delay) } => {
                write!(f, "restarting in {}", Readable(*delay))
            }
            ChildState::Restarting { in_: None } => f.write_str("restarting"),
            ChildState::Ended(outcome) => write!(f, "ended ({outcome})"),
        }
    }
}

/// One child at the moment of a snapshot; see
/// [`ManagerHandle::snapshot`](crate::ManagerHandle::snapshot).
///
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, ProcessManager};
///
/// let manager = ProcessManager::builder().name("root").build();
/// manager.insert(IdleProcess)?;
/// let info = &manager.handle().snapshot()[0];
/// assert_eq!((info.name(), info.path()), ("idle", "root/idle"));
/// assert_eq!(info.restarts(), 0);
/// assert!(info.uptime().is_none(), "not started yet");
/// assert!(info.last_error().is_none());
/// # Ok::<_, procmgr::BoxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChildInfo {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) state: ChildState,
    pub(crate) restarts: u32,
    pub(crate) uptime: Option<Duration>,
    pub(crate) last_error: Option<String>,
    pub(crate) slow_polls: u64,
    pub(crate) longest_poll: Option<Duration>,
    pub(crate) blocking: Option<Duration>,
}

impl ChildInfo {
    /// The child's id in its manager.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's path from the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the child is in its life.
    pub fn state(&self) -> &ChildState {
        &self.state
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// How long its current attempt has run, if one runs.
    pub fn uptime(&self) -> Option<Duration> {
        self.uptime
    }

    /// The message of its last failure, if it failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// How many polls of its future took longer than its slow-poll
    /// threshold, over all its attempts; always 0 without one (see
    /// [`ChildOptions::slow_poll`](crate::ChildOptions::slow_poll)).
    pub fn slow_polls(&self) -> u64 {
        self.slow_polls
    }

    /// Its longest poll over the slow-poll threshold, if it had one.
    pub fn longest_poll(&self) -> Option<Duration> {
        self.longest_poll
    }

    /// How long the poll it is in right now has blocked its thread, if that
    /// is longer than its slow-poll threshold: the child is blocking the
    /// runtime at the moment of the snapshot, and cannot be aborted until
    /// the poll returns.
    pub fn blocking(&self) -> Option<Duration> {
        self.blocking
    }
}

impl fmt::Display for ChildInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.state)?;
        if let Some(uptime) = self.uptime {
            write!(f, ", up {}", Readable(uptime))?;
        }
        match self.restarts {
            0 => {}
            1 => f.write_str(", 1 restart")?,
            n => write!(f, ", {n} restarts")?,
        }
        if let Some(blocked) = self.blocking {
            write!(f, ", BLOCKING for {}", Readable(blocked))?;
        }
        match (self.slow_polls, self.longest_poll) {
            (0, _) | (_, None) => {}
            (1, Some(longest)) => write!(f, ", 1 slow poll ({})", Readable(longest))?,
            (n, Some(longest)) => write!(f, ", {n} slow polls (longest {})", Readable(longest))?,
        }
        if let Some(error) = &self.last_error {
            write!(f, ", last error: {error}")?;
        }
        Ok(())
    }
}

/// A manager and its children, nested managers walked, at the moment of a
/// snapshot; see [`ManagerHandle::tree`](crate::ManagerHandle::tree). Its
/// `Display` draws it like `pstree`:
///
/// ```text
/// root
/// ├── http: ready, up 5s
/// ├── consumers: ready, up 5s
/// │   ├── kafka-0: restarting in 2s, 3 restarts, last error: broker down
/// │   └── kafka-1: ready, up 5s
/// └── idle: ready, up 5s
/// ```
///
/// # JSON (feature `serde`)
///
/// With the `serde` feature a snapshot implements `serde::Serialize`, for an
/// admin endpoint that serves the live tree. The shape is versioned: the
/// `version` field is 1 for the shape below and changes only when a field
/// changes meaning or goes away (new fields may appear within a version).
///
/// ```json
/// {
///   "version": 1,
///   "path": "root",
///   "children": [
///     {
///       "id": 0,
///       "name": "consumers",
///       "path": "root/consumers",
///       "state": "ready",
///       "restart_in_ms": null,
///       "outcome": null,
///       "restarts": 0,
///       "uptime_ms": 5000,
///       "last_error": null,
///       "slow_polls": 0,
///       "longest_poll_ms": null,
///       "blocking_ms": null,
///       "children": []
///     }
///   ]
/// }
/// ```
///
/// - `state`: `starting`, `running`, `ready`, `stopping`, `restarting` or
///   `ended` (see [`ChildState`]); `restart_in_ms` is the time left before a
///   `restarting` child's next attempt (`null` while it waits for its group),
///   `outcome` how an `ended` child ended: `completed`, `stopped`,
///   `failed`, `panicked` or `aborted`.
/// - Durations are whole milliseconds; `null` where [`ChildInfo`]'s getter
///   returns `None`.
/// - `children` is present only for a child that is a manager itself.
///
/// A [`ChildInfo`] serializes alone as the same object without `children`.
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, ProcessManager};
///
/// let inner = ProcessManager::builder().name("consumers").child(IdleProcess).build();
/// let root = ProcessManager::builder().name("root").build();
/// root.insert(inner)?;
/// let tree = root.handle().tree();
/// assert_eq!(tree.path(), "root");
/// assert_eq!(tree.children().len(), 1);
/// print!("{tree}"); // drawn like the tree above
/// # Ok::<_, procmgr::BoxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TreeSnapshot {
    pub(crate) path: String,
    pub(crate) children: Vec<TreeNode>,
}

/// One child in a [`TreeSnapshot`], with its own subtree if it is a
/// manager.
///
/// # Example
///
/// ```
/// use procmgr::{IdleProcess, ProcessManager, TreeSnapshot};
///
/// /// Every name in the tree, depth first, indented by depth.
/// fn names(tree: &TreeSnapshot, depth: usize, out: &mut Vec<String>) {
///     for node in tree.children() {
///         out.push(format!("{}{}", "  ".repeat(depth), node.info().name()));
///         if let Some(subtree) = node.subtree() {
///             names(subtree, depth + 1, out);
///         }
///     }
/// }
///
/// let inner = ProcessManager::builder().name("inner").child(IdleProcess).build();
/// let root = ProcessManager::builder().name("root").build();
/// root.insert(inner)?;
/// let mut out = Vec::new();
/// names(&root.handle().tree(), 0, &mut out);
/// assert_eq!(out, ["inner", "  idle"]);
/// # Ok::<_, procmgr::BoxError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TreeNode {
    pub(crate) info: ChildInfo,
    pub(crate) subtree: Option<TreeSnapshot>,
}

impl TreeSnapshot {
    /// The manager's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Its children, in insertion order.
    pub fn children(&self) -> &[TreeNode] {
        &self.children
    }

    fn draw(&self, f: &mut fmt::Formatter<'_>, prefix: &str) -> fmt::Result {
        for (index, node) in self.children.iter().enumerate() {
            let last = index + 1 == self.children.len();
            let (branch, indent) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            writeln!(f, "{prefix}{branch}{}", node.info)?;
            if let Some(subtree) = &node.subtree {
                subtree.draw(f, &format!("{prefix}{indent}"))?;
            }
        }
        Ok(())
    }
}

impl TreeNode {
    /// The child.
    pub fn info(&self) -> &ChildInfo {
        &self.info
    }

    /// Its children, if it is a manager.
    pub fn subtree(&self) -> Option<&TreeSnapshot> {
        self.subtree.as_ref()
    }
}

impl fmt::Display for TreeSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.path)?;
        self.draw(f, "")
    }
}

/// A duration as people read it in a status view: `350ms`, `10.5s`,
/// `3m20s`, `2h5m`.
struct Readable(Duration);

impl fmt::Display for Readable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        let seconds = self.0.as_secs();
        if millis < 1_000 {
            write!(f, "{millis}ms")
        } else if seconds < 60 {
            write!(f, "{}.{}s", seconds, (millis % 1_000) / 100)
        } else if seconds < 3_600 {
            write!(f, "{}m{}s", seconds / 60, seconds % 60)
        } else {
            write!(f, "{}h{}m", seconds / 3_600, (seconds % 3_600) / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Readable;
    use std::time::Duration;

    #[test]
    fn durations_read_like_a_status_view() {
        let cases = [
            (Duration::from_micros(351_455), "351ms"),
            (Duration::from_millis(10_500), "10.5s"),
            (Duration::from_secs(2), "2.0s"),
            (Duration::from_secs(200), "3m20s"),
            (Duration::from_secs(7_500), "2h5m"),
        ];
        for (duration, text) in cases {
            assert_eq!(Readable(duration).to_string(), text);
        }
    }
}
