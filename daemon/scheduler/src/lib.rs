//! The scheduler: a pure policy that decides which queued runs start on which devices and why
//! the others wait. It reads no clock and does no I/O; the daemon passes the time, the inventory
//! and the current allocations in, and an executor acts on the [`Decision`] (STYLE.md: policies
//! decide, executors act).
//!
//! # Rules
//! - **Requests.** A run asks for `gpus = N` whole GPUs (a gang: all N at once or none), or
//!   `gpu_share = s` in (0, 1] of one GPU, or (with `gpus == 0` and no share) one CPU slot.
//!   Both `gpus > 0` and a share, or a share outside (0, 1], is an invalid request and never starts.
//!   Shares are quantized to millionths of a GPU so sums are exact.
//! - **Capacity.** A CPU slot holds one run. A GPU holds one whole-GPU run, or share runs whose
//!   shares sum to at most 1 and whose `gpu_mem_mb` sum to at most the GPU's memory (when both are
//!   known). A whole GPU is only given when nothing is on it. A gang with `gpu_mem_mb` only uses
//!   GPUs with at least that much memory (when known). Whole-GPU grants carry the GPU's memory;
//!   share grants carry the run's `gpu_mem_mb`.
//! - **Placement.** CPU runs and gangs take the lowest-indexed free devices; a share goes to the
//!   fullest GPU it fits on (best fit), which keeps whole GPUs free for gangs.
//! - **Order.** Priority (higher first), then submission time, then id. With `fair_share`, within
//!   one priority level runs are dealt out user by user: next comes the earliest run of the user
//!   whose usage ([`Usage`]: GPU-equivalents, then CPU slots; running now plus the runs already
//!   dealt before it) is least, so an idle user goes before a busy one and two idle users alternate.
//! - **Backfill.** When a run cannot start, later runs that fit still start (with `backfill` off,
//!   nothing after the first blocked run starts). To keep large runs from starving, a blocked GPU
//!   run that has waited at least `reserve_after_ms` since submission *holds* devices: a gang the N
//!   suitable GPUs with the least in use, a share the suitable GPU with the least in use. No later
//!   run is placed on held devices, so they only drain; recomputed each decision, the held set's
//!   total use never grows and falls with every completion on it, so the run starts once the runs
//!   there finish. Runs ahead of it in the order (higher priority, or a fair-share turn) are not
//!   held back. A CPU run needs no hold: any free slot goes to the earliest CPU run in order.
//! - **Reasons.** Every pending run that does not start gets a line: "waiting for r-3 (stage 1)",
//!   "needs 2 GPUs, 1 free; 3 runs ahead", "needs 0.5 of a GPU; most free share 0.25; next in
//!   line", "no CPU slot free; 2 runs ahead", "needs 8 GPUs; the inventory has 4", ... "Runs
//!   ahead" counts the waiting runs before it in order that want the same kind of device.

mod inventory;
mod ledger;
mod order;
mod placement;
mod policy;
mod quota;
mod reason;

#[cfg(test)]
mod order_proptests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use cauda_model::{Grant, Millis, ResourceRequest, RunId};

pub use inventory::{DeviceInfo, DeviceKind, Inventory, InventoryError, MAX_CPU_SLOTS};
pub use order::Usage;
pub use placement::{Placement, schedule};
pub use policy::decide;

/// The scheduler's knobs (the `[scheduler]` table of the daemon's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Deal runs of equal priority out by user usage instead of pure FIFO.
    pub fair_share: bool,
    /// Let later runs start when an earlier one cannot.
    pub backfill: bool,
    /// How long a blocked GPU run waits (since submission) before it holds devices.
    pub reserve_after_ms: Millis,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            fair_share: true,
            backfill: true,
            reserve_after_ms: 10 * 60 * 1000,
        }
    }
}

/// A queued run as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRun {
    pub id: RunId,
    pub user: String,
    pub priority: i32,
    pub submitted_at: Millis,
    pub request: ResourceRequest,
    /// Whether the runs it depends on are done.
    pub ready: bool,
    /// The run it waits for, named in its reason while not ready.
    pub depends_on: Option<RunId>,
}

/// Everything one decision needs; the caller builds it from the store.
#[derive(Debug, Clone, Default)]
pub struct SchedulerInput {
    /// The time of the decision (an injected clock in tests).
    pub now: Millis,
    pub inventory: Inventory,
    /// The grants of the runs running now.
    pub allocations: BTreeMap<RunId, Vec<Grant>>,
    pub pending: Vec<PendingRun>,
    /// What each user runs now (sum of [`Usage::of_grants`] over their running runs).
    pub usage: BTreeMap<String, Usage>,
    pub config: SchedulerConfig,
    /// The most GPU-equivalents one user's runs may hold at once (`None`: no limit); see
    /// `quota`.
    pub gpu_quota: Option<u32>,
}

/// What the executor should do, and what to tell the users of the runs that wait.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Runs to start now, in decision order, with their devices.
    pub starts: Vec<(RunId, Vec<Grant>)>,
    /// One reason for every pending run that does not start.
    pub reasons: Vec<(RunId, String)>,
}

impl Decision {
    /// The reason given for `run`, if it waits.
    pub fn reason(&self, run: RunId) -> Option<&str> {
        self.reasons
            .iter()
            .find(|(id, _)| *id == run)
            .map(|(_, r)| r.as_str())
    }

    /// The grants of `run`, if it starts.
    pub fn grants(&self, run: RunId) -> Option<&[Grant]> {
        self.starts
            .iter()
            .find(|(id, _)| *id == run)
            .map(|(_, g)| g.as_slice())
    }
}
