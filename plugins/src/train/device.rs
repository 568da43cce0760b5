//! Which Burn backend a run trains on and the device built from (backend, device kind, index):
//! `flex` (pure-Rust CPU, always built), `tch` (libtorch: CPU or CUDA) and `vulkan` (wgpu on
//! Vulkan), the last two behind cargo features of the same names (docs/GPU.md). Burn picks the
//! backend from the device at run time, so this is the one place that names a backend; nothing
//! else calls `Device::default()`, whose choice changes with the features a binary was built with.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::spec::ResourcesSection;

/// A training backend, as a spec's `[resources] backend` and `caudad.toml`'s `[backends]` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (threads and SIMD); the default build's only backend.
    Flex,
    /// libtorch through burn-tch: its CPU device, or CUDA on a GPU (cargo feature `tch`).
    Tch,
    /// wgpu on Vulkan: any GPU with a Vulkan driver (cargo feature `vulkan`).
    Vulkan,
}

impl Backend {
    /// Every backend cauda knows, built in or not.
    pub const ALL: [Backend; 3] = [Backend::Flex, Backend::Tch, Backend::Vulkan];

    /// Its name in specs, configs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Tch => "tch",
            Backend::Vulkan => "vulkan",
        }
    }

    /// Whether this binary was built with it.
    pub fn is_built(self) -> bool {
        match self {
            Backend::Flex => true,
            Backend::Tch => cfg!(feature = "tch"),
            Backend::Vulkan => cfg!(feature = "vulkan"),
        }
    }

    /// Whether it can train on a GPU.
    pub fn runs_on_gpu(self) -> bool {
        !matches!(self, Backend::Flex)
    }

    /// The backends built into this binary, `flex` first.
    pub fn built() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_built()).collect()
    }

    /// The built backends as `flex, tch` for messages.
    pub fn built_list() -> String {
        Self::built()
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first GPU backend built in (`tch`, then `vulkan`), if any.
    pub fn first_gpu() -> Option<Backend> {
        [Backend::Tch, Backend::Vulkan]
            .into_iter()
            .find(|b| b.is_built())
    }

    /// Ok when built in; otherwise the reason, naming `program` (`caudad`) and the feature.
    pub fn check_built(self, program: &str) -> Result<Backend, DeviceError> {
        if self.is_built() {
            return Ok(self);
        }
        Err(DeviceError::NotBuilt {
            backend: self.name(),
            program: program.to_string(),
            built: Self::built_list(),
        })
    }

    /// The backend a run uses: its own choice, else the default where it runs: `flex` on a CPU
    /// slot; on a GPU `gpu_default` (`caudad.toml`'s `[backends] gpu`), else the first GPU
    /// backend built in, else `flex` (a flex-only build trains GPU-placed runs on the CPU).
    pub fn choose(requested: Option<Backend>, on_gpu: bool, gpu_default: Option<Backend>) -> Self {
        requested.unwrap_or_else(|| match on_gpu {
            false => Backend::Flex,
            true => gpu_default
                .or_else(Self::first_gpu)
                .unwrap_or(Backend::Flex),
        })
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where on the machine a run's device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A CPU slot.
    Cpu,
    /// The run's GPU with this index among the GPUs it sees (`CUDA_VISIBLE_DEVICES` numbers a
    /// worker's GPUs 0..N-1).
    Gpu(usize),
}

impl Placement {
    /// A run's placement from its resources: GPU 0 of its own when it asks for a GPU.
    pub fn of(resources: &ResourcesSection) -> Self {
        if resources.wants_gpu() {
            Placement::Gpu(0)
        } else {
            Placement::Cpu
        }
    }
}

/// Why a device could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "backend '{backend}' is not built into this {program} (built: {built}); rebuild with --features {backend}"
    )]
    NotBuilt {
        backend: &'static str,
        program: String,
        built: String,
    },
    #[error(
        "GPU {index} of this run is not among CUDA_VISIBLE_DEVICES={visible:?}, so its Vulkan device is unknown"
    )]
    NotVisible { index: usize, visible: String },
}

#[allow(dead_code)] // Used only by the builds that lack a backend.
fn not_built(backend: Backend) -> DeviceError {
    DeviceError::NotBuilt {
        backend: backend.name(),
        program: "binary".into(),
        built: Backend::built_list(),
    }
}

/// The device a run trains on: `backend` (which must be built in) at `placement`.
pub fn build_device(backend: Backend, placement: Placement) -> Result<Device, DeviceError> {
    backend.check_built("binary")?;
    match backend {
        Backend::Flex => Ok(Device::flex()),
        Backend::Tch => tch_device(placement),
        Backend::Vulkan => {
            let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
            vulkan_device(placement, visible.as_deref())
        }
    }
}

/// The device of a resolved run: its backend (or the default where it runs) at its placement.
pub fn run_device(
    resources: &ResourcesSection,
    gpu_default: Option<Backend>,
) -> Result<(Backend, Device), DeviceError> {
    let placement = Placement::of(resources);
    let backend = Backend::choose(resources.backend, placement != Placement::Cpu, gpu_default);
    Ok((backend, build_device(backend, placement)?))
}

/// The devices a run trains on: one per GPU it holds when it holds two or more
/// (`resources.gpus = N`: data-parallel over GPUs `0..N` of the ones it sees, see
/// `train::parallel`), else the one of [`run_device`]. A flex-only build trains such a run on N
/// CPU "devices", which compute what N GPUs would.
pub fn run_devices(
    resources: &ResourcesSection,
    gpu_default: Option<Backend>,
) -> Result<(Backend, Vec<Device>), DeviceError> {
    let (backend, first) = run_device(resources, gpu_default)?;
    let mut devices = vec![first];
    for i in 1..resources.gpus.max(1) {
        devices.push(build_device(backend, Placement::Gpu(i))?);
    }
    Ok((backend, devices))
}

/// The CPU device cauda's own bookkeeping runs on (exports, checks): always flex, whatever
/// backends the binary was built with.
pub fn host_device() -> Device {
    Device::flex()
}

#[cfg(feature = "tch")]
// burn 0.22 deprecates burn-tch in favour of its CubeCL backends, whose CUDA runtime cannot be
// built offline here (docs/GPU.md); libtorch stays our CUDA path until then.
#[allow(deprecated)]
fn tch_device(placement: Placement) -> Result<Device, DeviceError> {
    Ok(match placement {
        Placement::Cpu => Device::libtorch(),
        Placement::Gpu(i) => Device::libtorch_cuda(i),
    })
}

#[cfg(not(feature = "tch"))]
fn tch_device(_: Placement) -> Result<Device, DeviceError> {
    Err(not_built(Backend::Tch))
}

/// Vulkan ignores `CUDA_VISIBLE_DEVICES`: a worker's GPU `i` is the `i`-th entry of that list,
/// taken as an index among the host's discrete GPUs (NVIDIA's Vulkan driver lists them in PCI
/// bus order, the order the daemon numbers them in: `CUDA_DEVICE_ORDER=PCI_BUS_ID`).
pub fn vulkan_index(local: usize, visible: Option<&str>) -> Result<usize, DeviceError> {
    let Some(list) = visible.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(local);
    };
    list.split(',')
        .nth(local)
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| DeviceError::NotVisible {
            index: local,
            visible: list.to_string(),
        })
}

#[cfg(feature = "vulkan")]
fn vulkan_device(placement: Placement, visible: Option<&str>) -> Result<Device, DeviceError> {
    use burn::tensor::DeviceKind;
    Ok(match placement {
        Placement::Cpu => Device::vulkan(DeviceKind::Cpu),
        Placement::Gpu(i) => Device::vulkan(DeviceKind::DiscreteGpu(vulkan_index(i, visible)?)),
    })
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_device(_: Placement, _: Option<&str>) -> Result<Device, DeviceError> {
    Err(not_built(Backend::Vulkan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_placement_and_the_daemon_config() {
        assert_eq!(
            Backend::choose(None, false, Some(Backend::Tch)),
            Backend::Flex
        );
        assert_eq!(
            Backend::choose(None, true, Some(Backend::Vulkan)),
            Backend::Vulkan
        );
        let gpu = Backend::choose(None, true, None);
        assert_eq!(gpu, Backend::first_gpu().unwrap_or(Backend::Flex));
        assert_eq!(
            Backend::choose(Some(Backend::Tch), false, None),
            Backend::Tch
        );
    }

    #[test]
    fn unbuilt_backends_are_refused_with_the_feature_to_build() {
        assert!(Backend::Flex.is_built());
        assert_eq!(Backend::built()[0], Backend::Flex);
        for b in Backend::ALL {
            match b.check_built("caudad") {
                Ok(_) => assert!(b.is_built()),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!b.is_built());
                    assert!(
                        msg.contains(&format!("backend '{b}' is not built into this caudad"))
                            && msg.contains(&format!("--features {b}"))
                            && msg.contains("built: flex"),
                        "{msg}"
                    );
                    assert!(build_device(b, Placement::Cpu).is_err());
                }
            }
        }
    }

    #[test]
    fn vulkan_gpus_follow_cuda_visible_devices() {
        assert_eq!(vulkan_index(0, None), Ok(0));
        assert_eq!(vulkan_index(1, Some("")), Ok(1));
        assert_eq!(vulkan_index(0, Some("2,3")), Ok(2));
        assert_eq!(vulkan_index(1, Some("2, 3")), Ok(3));
        assert!(matches!(
            vulkan_index(2, Some("2,3")),
            Err(DeviceError::NotVisible { index: 2, .. })
        ));
        assert!(vulkan_index(0, Some("GPU-uuid")).is_err());
    }

    #[test]
    fn flex_is_the_host_device_and_builds_everywhere() {
        let d = build_device(Backend::Flex, Placement::Gpu(0)).expect("flex");
        assert_eq!(d, host_device());
    }
}
