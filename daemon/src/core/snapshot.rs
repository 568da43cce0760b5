//! A cheap look at the daemon's state for monitoring (`crate::metrics` renders it at each
//! scrape): runs per state counted from the store's state index, the queue's oldest wait, and
//! how much of each device the running runs hold. Takes no write lock, so a scrape never waits
//! behind a submission or a schedule, and a schedule never waits behind a scrape.

use super::{Daemon, Result};
use crate::model::{Millis, RunState};
use crate::scheduler::DeviceKind;
use crate::store::RunFilter;

/// Every run state, in the order snapshots list them.
pub const RUN_STATES: [RunState; 5] = [
    RunState::Queued,
    RunState::Running,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Cancelled,
];

/// The daemon's state at one instant (each part read on its own; not one transaction).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// How many runs are in each state, in [`RUN_STATES`]' order.
    pub runs: Vec<(RunState, u64)>,
    /// How long the longest-waiting queued run has waited since its submission, in ms (0 with an
    /// empty queue).
    pub oldest_queued_ms: Millis,
    /// Each device of the inventory: its kind and the share of it running runs hold, in [0, 1].
    pub devices: Vec<(DeviceKind, f64)>,
}

impl Snapshot {
    /// How many runs are in `state`.
    pub fn count(&self, state: RunState) -> u64 {
        self.runs
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

impl Daemon {
    /// The state a monitoring scrape reports; reads the store (run it off the async runtime).
    pub fn snapshot(&self) -> Result<Snapshot> {
        let mut runs = Vec::with_capacity(RUN_STATES.len());
        for state in RUN_STATES {
            runs.push((state, self.store.count_runs(state)?));
        }
        let queued = self.store.list_runs(&RunFilter {
            state: Some(RunState::Queued),
            ..RunFilter::default()
        })?;
        let now = self.clock.now();
        let oldest_queued_ms = queued
            .iter()
            .map(|r| now.saturating_sub(r.submitted_at))
            .max()
            .unwrap_or(0);
        let running = self.store.list_runs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })?;
        let devices = self
            .settings
            .inventory
            .devices()
            .iter()
            .map(|info| {
                let held: f64 = running
                    .iter()
                    .flat_map(|r| &r.grants)
                    .filter(|g| g.device == info.id)
                    .map(|g| g.share)
                    .sum();
                (info.kind, held.clamp(0.0, 1.0))
            })
            .collect();
        Ok(Snapshot {
            runs,
            oldest_queued_ms,
            devices,
        })
    }
}
