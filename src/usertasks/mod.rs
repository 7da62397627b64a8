//! Learning about the engine's own user tasks (issue #23).
//!
//! Camunda 7 pushes nothing about user tasks, so one replica at a time (the holder
//! of a lease in the database) reads over REST what changed since its watermark and
//! writes it as form tasks of kind "user task", through the same change log as
//! every other form (see [`crate::forms::Forms::learn_user_task`]). What a tick
//! costs does not depend on how many people or streams there are: two queries when
//! nothing changed, and a few per changed task. `docs/engine.md` ("User tasks")
//! describes the queries, the watermark, the overlap, the resync and the lease.

mod poller;

use std::time::Duration;

pub use poller::{PollError, UserTaskPoller};

/// How the poller reads the engine (`RAMP_USER_TASK_*`).
#[derive(Clone, Debug)]
pub struct UserTaskSettings {
    /// Whether ramp learns about user tasks at all (`RAMP_USER_TASKS`).
    pub enabled: bool,
    /// The pause between two reads (`RAMP_USER_TASK_POLL_MS`).
    pub poll: Duration,
    /// How far each read goes back below the watermark (`RAMP_USER_TASK_OVERLAP_MS`):
    /// a change the engine stamped before it committed a later-stamped one, or that
    /// another engine node with a slower clock stamped, is still read.
    pub overlap: Duration,
    /// How long the lease lasts unless renewed (`RAMP_USER_TASK_LEASE_MS`): another
    /// replica takes over at most this long after its holder stopped.
    pub lease: Duration,
    /// How often the holder reads all open tasks (`RAMP_USER_TASK_RESYNC_SECS`), to
    /// mend anything a read missed.
    pub resync: Duration,
}
