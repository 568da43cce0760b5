//! The host's NVIDIA GPUs as the daemon sees them: what discovery found (index, model, UUID,
//! memory) and cheap live figures (memory in use, utilization) for `ListDevices`. NVML is
//! loaded at run time (`nvml.rs`); a machine without the driver has no GPUs and a note saying
//! why, never an error. Discovery plus CPU slots make the inventory when the config has no
//! `devices` override.

mod nvml;
mod process;

pub use nvml::{discover, stats};
pub use process::{own_peak_mb, peak_mb_of, visible_gpus};

use crate::scheduler::{DeviceInfo, Inventory, InventoryError, MAX_CPU_SLOTS};

/// One GPU found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// NVML's index (PCI bus order); `gpu:K` in the inventory. CUDA numbers GPUs the same way
    /// only with `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
    pub index: u32,
    /// The model name, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: String,
    /// The GPU's UUID (`GPU-...`), stable across reboots and renumbering.
    pub uuid: String,
    /// Total memory in MiB.
    pub memory_total_mb: u64,
}

/// What discovery found, and in words why it found less than it might have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GpuDiscovery {
    /// The usable GPUs, by index.
    pub gpus: Vec<GpuInfo>,
    /// Why there are no GPUs (no driver, no permission, none installed) or which were skipped;
    /// `None` when every GPU NVML counts was described.
    pub note: Option<String>,
}

/// Live figures of one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuStats {
    /// Memory in use by any process, in MiB.
    pub memory_used_mb: u64,
    /// Memory still free, in MiB.
    pub memory_free_mb: u64,
    /// Percent of NVML's last sample period during which a kernel ran; `None` when the GPU
    /// does not report it.
    pub utilization_pct: Option<u32>,
}

impl GpuDiscovery {
    /// The inventory of a host with `cpu_slots` CPU slots (clamped to 1..=[`MAX_CPU_SLOTS`])
    /// and these GPUs, each with its memory and model.
    pub fn inventory(&self, cpu_slots: usize) -> Result<Inventory, InventoryError> {
        let cpus = u32::try_from(cpu_slots)
            .unwrap_or(MAX_CPU_SLOTS)
            .clamp(1, MAX_CPU_SLOTS);
        let mut devices: Vec<DeviceInfo> = (0..cpus).map(DeviceInfo::cpu).collect();
        devices.extend(
            self.gpus
                .iter()
                .map(|g| DeviceInfo::gpu(g.index, Some(g.memory_total_mb)).with_model(&g.model)),
        );
        Inventory::new(devices)
    }
}

/// Bytes -> whole MiB, rounded down.
fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceId;

    fn h100(index: u32) -> GpuInfo {
        GpuInfo {
            index,
            model: "NVIDIA H100 80GB HBM3".into(),
            uuid: format!("GPU-{index}"),
            memory_total_mb: 81_559,
        }
    }

    #[test]
    fn discovery_never_fails_and_explains_an_empty_result() {
        let found = discover();
        if found.gpus.is_empty() {
            let note = found.note.as_deref().expect("no GPUs comes with a note");
            assert!(!note.is_empty());
        }
        for g in &found.gpus {
            assert!(!g.model.is_empty() && g.memory_total_mb > 0, "{g:?}");
            assert!(stats(g.index).is_some(), "gpu:{} has no stats", g.index);
        }
        assert_eq!(discover(), found, "a second discovery sees the same GPUs");
        assert_eq!(stats(u32::MAX), None);
    }

    #[test]
    fn the_inventory_has_cpu_slots_then_gpus_with_memory_and_model() {
        let found = GpuDiscovery {
            gpus: vec![h100(0), h100(2)],
            note: None,
        };
        let inv = found.inventory(3).expect("valid");
        assert_eq!((inv.cpu_slots(), inv.gpu_count()), (3, 2));
        assert!(!inv.from_override());
        let gpu2 = inv.get(&DeviceId::Gpu(2)).expect("gpu:2");
        assert_eq!(gpu2.mem_mb, Some(81_559));
        assert_eq!(gpu2.model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(inv.devices()[0], DeviceInfo::cpu(0));
    }

    #[test]
    fn cpu_slots_are_clamped_and_duplicate_gpus_rejected() {
        let none = GpuDiscovery::default();
        assert_eq!(none.inventory(0).expect("valid").cpu_slots(), 1);
        assert_eq!(
            none.inventory(usize::MAX).expect("valid").cpu_slots(),
            MAX_CPU_SLOTS as usize
        );
        let dup = GpuDiscovery {
            gpus: vec![h100(1), h100(1)],
            note: None,
        };
        assert!(matches!(
            dup.inventory(1),
            Err(InventoryError::Duplicate { .. })
        ));
    }

    #[test]
    fn mib_rounds_down() {
        assert_eq!(mib(85_520_809_984), 81_559);
        assert_eq!(mib(1024 * 1024 - 1), 0);
    }
}
