//! The worker's own GPU memory: which GPUs it may use (`CUDA_VISIBLE_DEVICES`, set by the
//! executor to NVML indices with `CUDA_DEVICE_ORDER=PCI_BUS_ID`) and how much memory its process
//! holds on them (NVML's running compute processes). A worker reports it after its first epoch,
//! when the framework's caching allocator holds about its peak; the daemon reserves it for later
//! runs of the same config (`core::peak`).

use super::nvml::process_memory_mb;

/// The NVML indices in a `CUDA_VISIBLE_DEVICES` value: comma-separated integers; anything
/// else (UUIDs, blanks, `-1`) is skipped, and an empty value means no GPU.
pub fn visible_gpus(value: &str) -> Vec<u32> {
    value
        .split(',')
        .filter_map(|item| item.trim().parse::<u32>().ok())
        .collect()
}

/// This process's GPU memory in MiB on the most loaded of its visible GPUs (a gang's reservation
/// is per GPU); `None` on a CPU (no visible GPU), without NVML, or when NVML does not list it.
pub fn own_peak_mb() -> Option<u64> {
    peak_mb_of(std::process::id())
}

/// [`own_peak_mb`] of another process on this worker's GPUs (a command run's program).
pub fn peak_mb_of(pid: u32) -> Option<u64> {
    let visible = visible_gpus(&std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default());
    visible
        .into_iter()
        .filter_map(|index| process_memory_mb(index, pid))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_devices_are_parsed_leniently() {
        assert_eq!(visible_gpus("0,2, 3"), [0, 2, 3]);
        assert!(visible_gpus("").is_empty());
        assert!(visible_gpus("GPU-1234,-1").is_empty());
    }

    #[test]
    fn a_process_without_a_gpu_context_has_no_figure() {
        // This test process never creates a CUDA context, with or without a driver.
        assert_eq!(process_memory_mb(0, std::process::id()), None);
        assert_eq!(process_memory_mb(u32::MAX, 1), None);
    }
}
