//! How processes are controlled: the handles that send control requests, the
//! messages they become, and the [`Context`] through which a running process
//! receives them.
//!
//! A child's shared state ([`ChildCore`]) is owned jointly by its handles, its
//! context and its manager's bookkeeping. Shutdown travels through a
//! `CancellationToken` (a child's token is a child of its manager's token, so
//! stopping a manager reaches every child in one call); reloads and custom
//! messages go into a small inbox behind a mutex that is never held across an
//! `.await`, so no sender ever waits for the receiver.

mod child;
mod child_handle;
mod context;
mod end;
mod handler;
mod lifecycle;
mod message;
mod name;
mod outcome;
mod poll;
mod reason;

pub use child_handle::ChildHandle;
pub use context::Context;
pub(crate) use context::Scope;
pub use handler::ProcessControlHandler;
pub use lifecycle::{EVENT_CAPACITY, EventKind, Events, EventsError, LifecycleEvent};
pub use message::{ControlMessage, CustomMessage};
pub use outcome::Outcome;
pub use reason::{ShutdownReason, Signal};

pub(crate) use child::{ChildCore, ChildKey, ChildPolicy, Lineage, StopListener, Watched};
pub(crate) use end::{AttemptEnd, EndSignal, RunEnd};
pub(crate) use lifecycle::{EventHub, EventHubs};
pub(crate) use name::{ChildName, suffixed};
pub(crate) use poll::PollWatch;
pub(crate) use reason::ReasonCell;
