//! What a child is and how it is supervised: the policy types a user hands
//! to the manager (restart policy, backoff, limits, group strategy and the
//! per-child options), and the restart bookkeeping that evaluates them.
//!
//! Nothing here knows about the manager or a running child, so the error
//! types, the `Runnable` trait and the manager all depend on this module and
//! it depends on none of them.

mod options;
mod restart;

pub use options::ChildOptions;
pub use restart::{Backoff, Jitter, Restart, RestartLimit, Strategy};
pub(crate) use restart::{Random, RestartState, RestartWindow};
