//! The process's one NVML session: `libnvidia-ml.so.1` is loaded (through `nvml-wrapper`) on
//! first use and kept for the life of the process, so `ListDevices` reads live figures without
//! re-initialising NVML. When it cannot be loaded the reason is kept instead and every query
//! answers "no GPUs"; nothing here returns an error or panics.

use std::sync::OnceLock;

use nvml_wrapper::Nvml;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::{GpuDiscovery, GpuInfo, GpuStats, mib};

/// The session, or why there is none; initialised once.
static SESSION: OnceLock<Result<Nvml, String>> = OnceLock::new();

fn session() -> Result<&'static Nvml, &'static str> {
    SESSION
        .get_or_init(|| Nvml::init().map_err(|e| unavailable(&e)))
        .as_ref()
        .map_err(String::as_str)
}

/// Why NVML could not start, in words.
fn unavailable(err: &NvmlError) -> String {
    match err {
        NvmlError::LibloadingError(e) => {
            format!("NVML could not be loaded ({e}); is the NVIDIA driver installed?")
        }
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        other => format!("NVML did not start: {other}"),
    }
}

/// The GPUs NVML finds, by index. No driver, no permission or no GPU gives an empty list and a
/// note; a GPU that cannot describe itself is skipped and named in the note.
pub fn discover() -> GpuDiscovery {
    let nvml = match session() {
        Ok(nvml) => nvml,
        Err(why) => return no_gpus(format!("no GPUs: {why}")),
    };
    let count = match nvml.device_count() {
        Ok(0) => return no_gpus("no GPUs: NVML found none".into()),
        Ok(n) => n,
        Err(e) => return no_gpus(format!("no GPUs: NVML could not count them: {e}")),
    };
    let mut gpus = Vec::new();
    let mut skipped = Vec::new();
    for index in 0..count {
        match describe(nvml, index) {
            Ok(gpu) => gpus.push(gpu),
            Err(e) => skipped.push(format!("gpu:{index} skipped: {e}")),
        }
    }
    GpuDiscovery {
        gpus,
        note: (!skipped.is_empty()).then(|| skipped.join("; ")),
    }
}

fn no_gpus(note: String) -> GpuDiscovery {
    GpuDiscovery {
        gpus: Vec::new(),
        note: Some(note),
    }
}

fn describe(nvml: &Nvml, index: u32) -> Result<GpuInfo, NvmlError> {
    let device = nvml.device_by_index(index)?;
    Ok(GpuInfo {
        index,
        model: device.name()?,
        uuid: device.uuid()?,
        memory_total_mb: mib(device.memory_info()?.total),
    })
}

/// Memory and utilization of the GPU with this NVML index now; `None` without NVML, for an
/// unknown index, or when the GPU does not report its memory.
pub fn stats(index: u32) -> Option<GpuStats> {
    let device = session().ok()?.device_by_index(index).ok()?;
    let memory = device.memory_info().ok()?;
    Some(GpuStats {
        memory_used_mb: mib(memory.used),
        memory_free_mb: mib(memory.free),
        utilization_pct: device.utilization_rates().ok().map(|u| u.gpu),
    })
}

/// GPU memory in MiB that process `pid` uses on the GPU with this NVML index now (its compute
/// contexts); `None` without NVML, for an unknown index, when the process has no context
/// there or the driver does not say (WDDM). In a container NVML may list host pids, which do
/// not match ours: then there is no figure either.
pub fn process_memory_mb(index: u32, pid: u32) -> Option<u64> {
    let device = session().ok()?.device_by_index(index).ok()?;
    device
        .running_compute_processes()
        .ok()?
        .into_iter()
        .find(|p| p.pid == pid)
        .and_then(|p| match p.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => Some(mib(bytes)),
            UsedGpuMemory::Unavailable => None,
        })
}
