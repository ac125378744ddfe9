//! The JSON shape of a snapshot (feature `serde`), written by hand rather
//! than derived so that it stays what `TreeSnapshot`'s docs promise whatever
//! the Rust types become: durations as whole milliseconds, states as plain
//! strings, a `version` at the top.

use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{ChildInfo, ChildState, TreeNode, TreeSnapshot};
use crate::control::Outcome;

/// The shape's version, the `version` field of a serialized tree.
const VERSION: u32 = 1;

impl Serialize for TreeSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tree = serializer.serialize_struct("TreeSnapshot", 3)?;
        tree.serialize_field("version", &VERSION)?;
        tree.serialize_field("path", &self.path)?;
        tree.serialize_field("children", &self.children)?;
        tree.end()
    }
}

impl Serialize for TreeNode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let children = self.subtree.as_ref().map(|subtree| &subtree.children);
        self.info.serialize_with(serializer, children)
    }
}

impl Serialize for ChildInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_with(serializer, None)
    }
}

impl ChildInfo {
    fn serialize_with<S: Serializer>(
        &self,
        serializer: S,
        children: Option<&Vec<TreeNode>>,
    ) -> Result<S::Ok, S::Error> {
        let (state, restart_in, outcome) = match &self.state {
            ChildState::Starting => ("starting", None, None),
            ChildState::Running => ("running", None, None),
            ChildState::Ready => ("ready", None, None),
            ChildState::Stopping => ("stopping", None, None),
            ChildState::Restarting { in_ } => ("restarting", *in_, None),
            ChildState::Ended(outcome) => ("ended", None, Some(outcome_name(outcome))),
        };
        let mut child = serializer.serialize_struct("ChildInfo", 13)?;
        child.serialize_field("id", &self.id)?;
        child.serialize_field("name", &self.name)?;
        child.serialize_field("path", &self.path)?;
        child.serialize_field("state", state)?;
        child.serialize_field("restart_in_ms", &restart_in.map(millis))?;
        child.serialize_field("outcome", &outcome)?;
        child.serialize_field("restarts", &self.restarts)?;
        child.serialize_field("uptime_ms", &self.uptime.map(millis))?;
        child.serialize_field("last_error", &self.last_error)?;
        child.serialize_field("slow_polls", &self.slow_polls)?;
        child.serialize_field("longest_poll_ms", &self.longest_poll.map(millis))?;
        child.serialize_field("blocking_ms", &self.blocking.map(millis))?;
        match children {
            Some(children) => child.serialize_field("children", children)?,
            None => child.skip_field("children")?,
        }
        child.end()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Completed => "completed",
        Outcome::Stopped => "stopped",
        Outcome::Failed(_) => "failed",
        Outcome::Panicked(_) => "panicked",
        Outcome::Aborted => "aborted",
    }
}
