//! Capacity bookkeeping for one scheduling decision: what each device has left once the current
//! allocations (and the starts decided so far) are counted, which devices are held for a waiting
//! run, and where a request fits. Shares are counted in integer millionths so sums are exact.

use std::collections::BTreeMap;

use cauda_model::{DeviceId, Grant, ResourceRequest, RunId};

use super::inventory::{DeviceInfo, DeviceKind, Inventory};

/// One whole device, in share units (shares are quantized to millionths of a device).
pub const UNITS: u64 = 1_000_000;

/// A share in (0, 1] as integer units (at least 1, at most [`UNITS`]).
pub fn share_units(share: f64) -> u64 {
    ((share * UNITS as f64).round() as u64).clamp(1, UNITS)
}

/// Units back to a share.
pub fn units_share(units: u64) -> f64 {
    units as f64 / UNITS as f64
}

/// A validated request: exactly one of the three shapes a run may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// One CPU slot (`gpus == 0`, no share).
    Cpu,
    /// `n` whole GPUs at once (gang), each with at least `mem_mb` when both are known.
    Gang { n: u32, mem_mb: Option<u64> },
    /// `units` of one GPU and `mem_mb` of its memory.
    Share { units: u64, mem_mb: Option<u64> },
}

impl Need {
    /// Validates a request; the error is the reason text.
    pub fn from_request(req: &ResourceRequest) -> Result<Self, String> {
        match (req.gpus, req.gpu_share) {
            (0, None) => Ok(Need::Cpu),
            (n, None) => Ok(Need::Gang {
                n,
                mem_mb: req.gpu_mem_mb,
            }),
            (0, Some(s)) if s > 0.0 && s <= 1.0 => Ok(Need::Share {
                units: share_units(s),
                mem_mb: req.gpu_mem_mb,
            }),
            (0, Some(s)) => Err(format!(
                "invalid request: gpu_share must be in (0, 1], got {s}"
            )),
            (n, Some(s)) => Err(format!(
                "invalid request: gpus = {n} and gpu_share = {s} are both set; ask for one"
            )),
        }
    }

    /// Whether the need is for GPUs (whole or shared).
    pub fn wants_gpu(&self) -> bool {
        !matches!(self, Need::Cpu)
    }

    /// Whether `dev` could ever serve this need (kind and total memory), ignoring current use.
    pub fn suits(&self, dev: &DeviceInfo) -> bool {
        let mem_ok = |want: Option<u64>| match (want, dev.mem_mb) {
            (Some(w), Some(cap)) => w <= cap,
            _ => true,
        };
        match *self {
            Need::Cpu => dev.kind == DeviceKind::Cpu,
            Need::Gang { mem_mb, .. } | Need::Share { mem_mb, .. } => {
                dev.kind == DeviceKind::Gpu && mem_ok(mem_mb)
            }
        }
    }
}

/// One device's state during a decision.
#[derive(Debug, Clone)]
pub struct Slot {
    pub info: DeviceInfo,
    /// Share units in use (may exceed [`UNITS`] only if the input allocations were overcommitted).
    pub used: u64,
    /// Memory in MiB granted to share runs (a whole-GPU grant counts the device's memory).
    pub mem_used: u64,
    /// The waiting run this device is held for, if any.
    pub held_for: Option<RunId>,
}

impl Slot {
    fn usable_by(&self, run: RunId) -> bool {
        self.held_for.is_none_or(|h| h == run)
    }

    /// Share units still free.
    pub fn free_units(&self) -> u64 {
        UNITS.saturating_sub(self.used)
    }

    /// Memory still free, when the device's memory is known.
    pub fn free_mem(&self) -> Option<u64> {
        self.info
            .mem_mb
            .map(|cap| cap.saturating_sub(self.mem_used))
    }

    /// Whether `need` fits on this device now (one device's worth: a gang checks each GPU).
    pub fn fits_now(&self, need: &Need) -> bool {
        if !need.suits(&self.info) {
            return false;
        }
        match *need {
            Need::Cpu | Need::Gang { .. } => self.used == 0,
            Need::Share { units, mem_mb } => {
                let mem_ok = match (mem_mb, self.free_mem()) {
                    (Some(w), Some(free)) => w <= free,
                    _ => true,
                };
                self.used.saturating_add(units) <= UNITS && mem_ok
            }
        }
    }
}

/// Every device's state during one decision, in inventory order.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub slots: Vec<Slot>,
}

impl Ledger {
    /// The inventory with the current allocations counted. Grants on devices the inventory does
    /// not list are ignored (the device is gone; nothing can be placed on it anyway).
    pub fn new(inventory: &Inventory, allocations: &BTreeMap<RunId, Vec<Grant>>) -> Self {
        let mut slots: Vec<Slot> = inventory
            .devices()
            .iter()
            .map(|d| Slot {
                info: d.clone(),
                used: 0,
                mem_used: 0,
                held_for: None,
            })
            .collect();
        for grant in allocations.values().flatten() {
            if let Some(slot) = slots.iter_mut().find(|s| s.info.id == grant.device) {
                let units = if grant.share > 0.0 {
                    share_units(grant.share)
                } else {
                    0
                };
                slot.used = slot.used.saturating_add(units);
                slot.mem_used = slot.mem_used.saturating_add(grant.mem_mb.unwrap_or(0));
            }
        }
        Self { slots }
    }

    /// Where `need` fits now for `run`, avoiding devices held for other runs: the slot indices.
    /// CPU and gang take the lowest-indexed free devices; a share goes to the fullest GPU it fits
    /// on (best fit), which keeps whole GPUs free for gang runs.
    pub fn place(&self, need: &Need, run: RunId) -> Option<Vec<usize>> {
        let fits = |s: &&Slot| s.usable_by(run) && s.fits_now(need);
        let candidates = self.slots.iter().enumerate().filter(|(_, s)| fits(s));
        match *need {
            Need::Cpu => candidates.map(|(i, _)| vec![i]).next(),
            Need::Gang { n, .. } => {
                let picked: Vec<usize> = candidates.map(|(i, _)| i).take(n as usize).collect();
                (picked.len() == n as usize).then_some(picked)
            }
            Need::Share { .. } => candidates
                .min_by_key(|(i, s)| (s.free_units(), s.free_mem().unwrap_or(u64::MAX), *i))
                .map(|(i, _)| vec![i]),
        }
    }

    /// Counts the grants for `need` on `slots` and returns them.
    pub fn commit(&mut self, need: &Need, slots: &[usize]) -> Vec<Grant> {
        slots
            .iter()
            .map(|&i| {
                let slot = &mut self.slots[i];
                let (units, mem_mb) = match *need {
                    Need::Cpu => (UNITS, None),
                    Need::Gang { .. } => (UNITS, slot.info.mem_mb),
                    Need::Share { units, mem_mb } => (units, mem_mb),
                };
                slot.used = slot.used.saturating_add(units);
                slot.mem_used = slot.mem_used.saturating_add(mem_mb.unwrap_or(0));
                Grant {
                    device: slot.info.id.clone(),
                    share: units_share(units),
                    mem_mb,
                }
            })
            .collect()
    }

    /// Holds devices for a waiting run so that no later run lands on them; they drain as their
    /// runs finish. A gang holds the `n` suitable GPUs with the least share in use, a share the
    /// one suitable GPU with the least in use. Returns the held ids, or `None` (CPU needs hold
    /// nothing: a free slot always goes to the earliest CPU run in order).
    pub fn hold(&mut self, need: &Need, run: RunId) -> Option<Vec<DeviceId>> {
        let want = match *need {
            Need::Cpu => return None,
            Need::Gang { n, .. } => n as usize,
            Need::Share { .. } => 1,
        };
        let mut free: Vec<(u64, u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.held_for.is_none() && need.suits(&s.info))
            .map(|(i, s)| (s.used, s.mem_used, i))
            .collect();
        if free.len() < want {
            return None;
        }
        free.sort_unstable();
        let mut ids: Vec<DeviceId> = free[..want]
            .iter()
            .map(|&(_, _, i)| {
                self.slots[i].held_for = Some(run);
                self.slots[i].info.id.clone()
            })
            .collect();
        ids.sort();
        Some(ids)
    }
}
