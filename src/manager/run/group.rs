//! Group restarts (one-for-all, rest-for-one): the siblings of a child that
//! is restarted are stopped, then all of them start again together.
//!
//! 1. The child that ended (the trigger) waits as `Held`.
//! 2. Its siblings in the group (every other foreground child, or with
//!    rest-for-one those inserted after it) are asked to stop within their
//!    grace period; with ordered stop one at a time, the one started last
//!    first. Siblings waiting for their own restart join as `Held` at once.
//! 3. Each member that ends waits as `Held`. Inserts wait meanwhile.
//! 4. Once no member runs, the members start again after the trigger's
//!    backoff, in the order they had started; members without a restart
//!    policy, or stopped through their handle meanwhile, end for good.
//!    With ordered start, the members that took part in it start one at a
//!    time, each once the one before is ready or has ended (and within the
//!    start timeout), like the first start; the others start at once.
//!    Inserts go on waiting until no member waits for its restart.
//!
//! The group is found through the registry's id-ordered list, so a group
//! restart costs O(group size).

use std::time::Duration;

use tokio::time::Instant;

use super::Run;
use super::end::Ending;
use super::timers::{TimerKind, later};
use crate::control::{ChildCore, ChildKey, Outcome, ShutdownReason};
use crate::manager::registry::{GroupRole, Registry, Stage};
use crate::policy::Strategy;

/// A group restart in flight.
pub(super) enum Group {
    /// Its members are being stopped.
    Stopping(Members),
    /// Every member has ended; `waiting` of them wait in `Backoff` for the
    /// group's restart. Inserts wait until none does, so a new child never
    /// runs beside stopped siblings. With ordered start, `queued` are the
    /// members that start one at a time, by start order (the next one
    /// last); each waits in `Backoff` without a timer until the one before
    /// it, the run's `awaiting_ready`, is ready.
    Scheduled {
        waiting: usize,
        queued: Vec<(u64, ChildKey)>,
    },
}

/// The members of a group restart being stopped.
pub(super) struct Members {
    /// Members asked to stop whose attempt still runs.
    stopping: usize,
    /// Ordered stop: members still to ask, by start order (asked from the
    /// back).
    queued: Vec<(u64, ChildKey)>,
    /// Every member, the trigger included.
    members: Vec<ChildKey>,
    /// The longest backoff among the triggers, which the whole group waits.
    delay: Duration,
}

impl Run<'_> {
    /// Steps 1 and 2, for a trigger that has just been held.
    pub(super) fn restart_with_siblings(
        &mut self,
        trigger: ChildKey,
        failed: bool,
        delay: Duration,
    ) {
        let now = Instant::now();
        let ordered = self.shared.settings.ordered_stop;
        let mut group = {
            let shared = self.shared;
            let mut registry = shared.registry();
            let Some(name) = registry.get(trigger).map(|record| record.core.name.clone()) else {
                return;
            };
            let mut group = match self.group.take() {
                Some(Group::Stopping(members)) => members,
                // A restart is scheduled, its members wait in `Backoff`: they
                // join this group (their timers go void with their stage).
                Some(Group::Scheduled { .. }) | None => Members {
                    stopping: 0,
                    queued: Vec::new(),
                    members: Vec::new(),
                    delay,
                },
            };
            group.delay = group.delay.max(delay);
            group.members.push(trigger);

            let path = self.child_path(&name);
            let reason = if failed {
                ShutdownReason::ChildFailed { path }
            } else {
                ShutdownReason::ChildEnded { path }
            };
            let after = match self.shared.settings.strategy {
                Strategy::RestForOne => Some(trigger.id),
                _ => None,
            };
            for key in registry.in_order_after(after) {
                let Some(record) = registry.get_mut(key) else {
                    continue;
                };
                if key == trigger || record.core.policy.background() {
                    continue;
                }
                match record.stage() {
                    Stage::Running(attempt) if attempt.group == GroupRole::None => {
                        let order = attempt.order;
                        record.core.set_restart_reason(reason.clone());
                        group.members.push(key);
                        let role = if ordered {
                            group.queued.push((order, key));
                            GroupRole::Queued
                        } else {
                            record.stop_attempt();
                            self.arm_grace(record, now);
                            group.stopping += 1;
                            GroupRole::Stopping
                        };
                        if let Some(attempt) = record.attempt_mut() {
                            attempt.group = role;
                        }
                    }
                    &Stage::Backoff { order, .. } => {
                        // Its own restart timer goes void with the stage.
                        record.restage(|last| Stage::Held {
                            last: last.unwrap_or_else(|| Box::new(Outcome::Stopped)),
                            order,
                        });
                        group.members.push(key);
                    }
                    _ => {}
                }
            }
            group
        };
        group.queued.sort_unstable();
        self.group = Some(Group::Stopping(group));
        self.advance_group(now);
    }

    /// Step 3: a member has ended; `asked` if it was asked to stop (not
    /// still queued).
    pub(super) fn group_member_ended(&mut self, asked: bool) {
        if let (Some(Group::Stopping(group)), true) = (&mut self.group, asked) {
            group.stopping = group.stopping.saturating_sub(1);
        }
        self.advance_group(Instant::now());
    }

    /// Asks the next queued member to stop, or restarts the group once none
    /// is left.
    fn advance_group(&mut self, now: Instant) {
        let Some(Group::Stopping(mut group)) = self.group.take() else {
            return;
        };
        if group.stopping == 0 {
            let shared = self.shared;
            let mut registry = shared.registry();
            while let Some((_, key)) = group.queued.pop() {
                let Some(record) = registry.get_mut(key) else {
                    continue;
                };
                // It may have ended by itself meanwhile, and be held already.
                let Some(attempt) = record.attempt_mut() else {
                    continue;
                };
                attempt.group = GroupRole::Stopping;
                record.stop_attempt();
                self.arm_grace(record, now);
                group.stopping = 1;
                break;
            }
        }
        if group.stopping == 0 {
            self.restart_group(group);
        } else {
            self.group = Some(Group::Stopping(group));
        }
    }

    /// Step 4.
    fn restart_group(&mut self, group: Members) {
        let at = later(Instant::now(), group.delay);
        let ordered = self.shared.settings.ordered_start.is_some();
        let mut waiting = 0;
        let mut queued = Vec::new();
        let mut finals = Vec::new();
        {
            let shared = self.shared;
            let mut registry = shared.registry();
            for key in group.members {
                let Some(record) = registry.get_mut(key) else {
                    continue;
                };
                if !matches!(record.stage(), Stage::Held { .. }) {
                    continue;
                }
                // Without a restart policy it ends with its group's stop, and
                // its failure counts; stopped through its handle meanwhile,
                // its restart is called off, like one in backoff.
                if record.restart.is_none() {
                    finals.push((key, Ending::Group));
                    continue;
                }
                if record.core.is_stopped() {
                    finals.push((key, Ending::Waiting));
                    continue;
                }
                if let &Stage::Held { order, .. } = record.stage() {
                    record.restage(|last| Stage::Backoff {
                        at,
                        last: last.unwrap_or_else(|| Box::new(Outcome::Stopped)),
                        order,
                    });
                    waiting += 1;
                    if ordered && record.core.policy.announce_ready() {
                        queued.push((order, key));
                    } else {
                        // Due together, they start in the order they had
                        // started.
                        self.timers
                            .set_ranked(at, TimerKind::Restart, order, record);
                    }
                }
            }
            // The first in start order comes due after the backoff; the
            // others follow it one by one (`start_next_member`).
            queued.sort_unstable_by(|a, b| b.cmp(a));
            if let Some((order, key)) = queued.pop() {
                if let Some(record) = registry.get(key) {
                    self.timers
                        .set_ranked(at, TimerKind::Restart, order, record);
                    self.awaiting_ready = Some(key);
                }
            }
        }
        if waiting == 0 {
            // Nobody restarts: inserts that waited for the group start now.
            self.group = None;
            self.work_for_next_turn();
        } else {
            self.group = Some(Group::Scheduled { waiting, queued });
        }
        for (key, ending) in finals {
            self.end_child(key, ending);
        }
    }

    /// A member of a scheduled group left its backoff: it started again, or
    /// its end became final. Once none waits, the group restart is over and
    /// inserts that waited for it start on the next turn.
    pub(super) fn left_group_backoff(&mut self) {
        if let Some(Group::Scheduled { waiting, .. }) = &mut self.group {
            *waiting -= 1;
            if *waiting == 0 {
                self.group = None;
                self.work_for_next_turn();
            }
        }
    }

    /// Ordered start, once the member started before is ready or has ended
    /// (no child is awaited): the next queued member's restart comes due
    /// now, and it is awaited in turn. Members that ended meanwhile are
    /// skipped.
    pub(super) fn start_next_member(&mut self, registry: &Registry, now: Instant) {
        let Some(Group::Scheduled { queued, .. }) = &mut self.group else {
            return;
        };
        while let Some((order, key)) = queued.pop() {
            let Some(record) = registry.get(key) else {
                continue;
            };
            if matches!(record.stage(), Stage::Backoff { .. }) {
                self.timers
                    .set_ranked(now, TimerKind::Restart, order, record);
                self.awaiting_ready = Some(key);
                return;
            }
        }
    }

    /// Whether an ordered start waits to restart members of a group.
    pub(super) fn has_queued_members(&self) -> bool {
        matches!(&self.group, Some(Group::Scheduled { queued, .. }) if !queued.is_empty())
    }

    /// Whether the record's backoff is its group's: under a group strategy a
    /// foreground child restarts only with its group.
    pub(super) fn backoff_is_group(&self, core: &ChildCore) -> bool {
        !core.policy.background() && self.shared.settings.strategy != Strategy::OneForOne
    }

    /// Whether an attempt the group asked to stop (or queued) ends as part
    /// of it.
    pub(super) fn group_is_stopping(&self) -> bool {
        matches!(self.group, Some(Group::Stopping(_)))
    }
}
