//! The words a waiting run shows its user ("needs 2 GPUs, 1 free; 3 runs ahead"): every
//! pending run that does not start gets one, computed from the same ledger the decision used.

use cauda_model::{DeviceId, RunId};

use super::inventory::Inventory;
use super::ledger::{Ledger, Need, units_share};

/// "waiting for r-3 (stage 1)", or a generic line when the dependency is unknown.
pub fn not_ready(depends_on: Option<RunId>) -> String {
    match depends_on {
        Some(dep) => format!("waiting for {dep} (stage 1)"),
        None => "waiting for the runs it depends on".to_string(),
    }
}

/// Why a valid need can never be met by this inventory, or `None` when it can.
pub fn impossible(need: &Need, inventory: &Inventory) -> Option<String> {
    let suitable = inventory.devices().iter().filter(|d| need.suits(d)).count();
    match *need {
        Need::Cpu if suitable == 0 => Some("needs a CPU slot; the inventory has none".into()),
        Need::Gang { n, mem_mb } if suitable < n as usize => Some(match mem_mb {
            Some(m) if inventory.gpu_count() > suitable => format!(
                "needs {} with {m} MiB each; the inventory has {} with that much memory",
                gpus(n as usize),
                gpus(suitable)
            ),
            _ => format!(
                "needs {}; the inventory has {}",
                gpus(n as usize),
                gpus(suitable)
            ),
        }),
        Need::Share { units, mem_mb } if suitable == 0 => Some(match mem_mb {
            Some(m) if inventory.gpu_count() > 0 => format!(
                "needs {} of a GPU with {m} MiB; no GPU has that much memory",
                units_share(units)
            ),
            _ => format!(
                "needs {} of a GPU; the inventory has no GPU",
                units_share(units)
            ),
        }),
        _ => None,
    }
}

/// Why a valid, possible need does not fit now, given `ahead` waiting runs before it.
pub fn blocked(need: &Need, ledger: &Ledger, run: RunId, ahead: usize) -> String {
    let usable = |held: &Option<RunId>| held.is_none_or(|h| h == run);
    let mut held_by: Vec<RunId> = Vec::new();
    let mut note_holder = |h: Option<RunId>| {
        if let Some(h) = h.filter(|h| *h != run)
            && !held_by.contains(&h)
        {
            held_by.push(h);
        }
    };
    let head = match *need {
        Need::Cpu => {
            for s in ledger.slots.iter().filter(|s| s.fits_now(need)) {
                note_holder(s.held_for);
            }
            "no CPU slot free".to_string()
        }
        Need::Gang { n, .. } => {
            let mut free = 0;
            for s in ledger.slots.iter().filter(|s| s.fits_now(need)) {
                if usable(&s.held_for) {
                    free += 1;
                } else {
                    note_holder(s.held_for);
                }
            }
            format!("needs {}, {free} free", gpus(n as usize))
        }
        Need::Share { units, mem_mb } => {
            let mut best_units = 0;
            let mut best_mem: Option<u64> = None;
            for s in ledger.slots.iter().filter(|s| need.suits(&s.info)) {
                if !usable(&s.held_for) {
                    if s.fits_now(need) {
                        note_holder(s.held_for);
                    }
                    continue;
                }
                best_units = best_units.max(s.free_units());
                if let Some(m) = s.free_mem() {
                    best_mem = Some(best_mem.map_or(m, |b: u64| b.max(m)));
                }
            }
            let share = units_share(units);
            let most = units_share(best_units);
            match (mem_mb, best_mem) {
                (Some(m), Some(bm)) => format!(
                    "needs {share} of a GPU with {m} MiB; most free share {most}, most free memory {bm} MiB"
                ),
                _ => format!("needs {share} of a GPU; most free share {most}"),
            }
        }
    };
    let mut text = head;
    if !held_by.is_empty() {
        let names: Vec<String> = held_by.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "; devices that would fit are held for {}",
            names.join(", ")
        ));
    }
    text.push_str("; ");
    text.push_str(&runs_ahead(ahead));
    text
}

/// A run that would fit but waits because backfill is off and `first` is blocked before it.
pub fn strict_order(first: RunId, ahead: usize) -> String {
    format!(
        "waiting its turn behind {first} (backfill is off); {}",
        runs_ahead(ahead)
    )
}

/// Appended to the reason of a run that now holds devices for itself.
pub fn holding(devices: &[DeviceId]) -> String {
    let names: Vec<String> = devices.iter().map(ToString::to_string).collect();
    format!("; holding {} until they free up", names.join(", "))
}

fn runs_ahead(ahead: usize) -> String {
    match ahead {
        0 => "next in line".to_string(),
        1 => "1 run ahead".to_string(),
        n => format!("{n} runs ahead"),
    }
}

fn gpus(n: usize) -> String {
    if n == 1 {
        "1 GPU".into()
    } else {
        format!("{n} GPUs")
    }
}
