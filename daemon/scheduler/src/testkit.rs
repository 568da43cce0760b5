//! A tiny simulated daemon for the scheduler's tests: it keeps the queue, the allocations and the
//! users' usage, calls [`decide`] at an injected time, applies the starts and completes runs, and
//! checks after every step that no device is over capacity.

use std::collections::BTreeMap;

use cauda_model::{DeviceId, Grant, Millis, ResourceRequest, RunId};

use super::{Decision, Inventory, PendingRun, SchedulerConfig, SchedulerInput, Usage, decide};

/// `gpus = n`.
pub fn gang(n: u32) -> ResourceRequest {
    ResourceRequest {
        gpus: n,
        ..Default::default()
    }
}

/// `gpu_share = s`, optionally with `gpu_mem_mb`.
pub fn share(s: f64, mem_mb: Option<u64>) -> ResourceRequest {
    ResourceRequest {
        gpus: 0,
        gpu_share: Some(s),
        gpu_mem_mb: mem_mb,
    }
}

/// A CPU slot.
pub fn cpu() -> ResourceRequest {
    ResourceRequest::default()
}

/// An inventory from spec entries (panics on a bad spec: test input only).
pub fn inventory(items: &[&str]) -> Inventory {
    let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    Inventory::from_spec(&items).expect("test inventory spec")
}

pub struct Sim {
    pub inventory: Inventory,
    pub config: SchedulerConfig,
    pub now: Millis,
    pub pending: Vec<PendingRun>,
    pub running: BTreeMap<RunId, (String, ResourceRequest, Vec<Grant>)>,
    /// Every run started so far, with the step it started at.
    pub started: Vec<(RunId, usize)>,
    pub steps: usize,
    /// `SchedulerInput::gpu_quota` of every decision.
    pub gpu_quota: Option<u32>,
    next_id: u64,
}

impl Sim {
    pub fn new(inventory: Inventory, config: SchedulerConfig) -> Self {
        Self {
            inventory,
            config,
            now: 0,
            pending: Vec::new(),
            running: BTreeMap::new(),
            started: Vec::new(),
            steps: 0,
            gpu_quota: None,
            next_id: 1,
        }
    }

    /// Queues a run at the current time; returns its id.
    pub fn submit(&mut self, user: &str, priority: i32, request: ResourceRequest) -> RunId {
        let id = RunId(self.next_id);
        self.next_id += 1;
        self.pending.push(PendingRun {
            id,
            user: user.to_string(),
            priority,
            submitted_at: self.now,
            request,
            ready: true,
            depends_on: None,
        });
        id
    }

    pub fn input(&self) -> SchedulerInput {
        let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
        for (user, _, grants) in self.running.values() {
            usage
                .entry(user.clone())
                .or_default()
                .add(Usage::of_grants(grants));
        }
        SchedulerInput {
            now: self.now,
            inventory: self.inventory.clone(),
            allocations: self
                .running
                .iter()
                .map(|(id, (_, _, g))| (*id, g.clone()))
                .collect(),
            pending: self.pending.clone(),
            usage,
            config: self.config,
            gpu_quota: self.gpu_quota,
        }
    }

    /// One decision: applies its starts, checks capacity, and returns it.
    pub fn step(&mut self) -> Decision {
        let decision = decide(&self.input());
        for (id, grants) in &decision.starts {
            let pos = self
                .pending
                .iter()
                .position(|p| p.id == *id)
                .expect("started a pending run");
            let run = self.pending.remove(pos);
            self.running
                .insert(*id, (run.user, run.request, grants.clone()));
            self.started.push((*id, self.steps));
        }
        self.steps += 1;
        self.check_capacity();
        decision
    }

    /// Finishes a running run, freeing its devices.
    pub fn complete(&mut self, id: RunId) {
        self.running.remove(&id).expect("completed a running run");
    }

    /// The devices `id` runs on.
    pub fn devices_of(&self, id: RunId) -> Vec<DeviceId> {
        self.running
            .get(&id)
            .map(|(_, _, g)| g.iter().map(|g| g.device.clone()).collect())
            .unwrap_or_default()
    }

    pub fn is_running(&self, id: RunId) -> bool {
        self.running.contains_key(&id)
    }

    /// No device's shares sum past 1, no whole-GPU grant shares its GPU, memory fits.
    pub fn check_capacity(&self) {
        for dev in self.inventory.devices() {
            let grants: Vec<&Grant> = self
                .running
                .values()
                .flat_map(|(_, _, g)| g)
                .filter(|g| g.device == dev.id)
                .collect();
            let sum: f64 = grants.iter().map(|g| g.share).sum();
            assert!(sum <= 1.0 + 1e-9, "{} over capacity: {grants:?}", dev.id);
            if grants.iter().any(|g| g.share >= 1.0) {
                assert_eq!(grants.len(), 1, "{} whole grant shared: {grants:?}", dev.id);
            }
            if let Some(cap) = dev.mem_mb {
                let mem: u64 = grants.iter().filter_map(|g| g.mem_mb).sum();
                assert!(mem <= cap, "{} memory over capacity: {grants:?}", dev.id);
            }
        }
    }
}
