//! The devices the scheduler may hand out: CPU slots and GPUs (with their memory when known),
//! built from the config's override list (`devices = ["cpu:2", "gpu:0", "gpu:1@24000"]`) so tests
//! and GPU-less machines schedule onto fake devices. NVML discovery (`crate::gpu`) builds the
//! same type with [`Inventory::new`], and the inventory remembers which of the two it came from.

use std::sync::Arc;

use cauda_model::DeviceId;

/// The most CPU slots one `cpu:N` entry may declare (a typo like `cpu:1000000` is an error,
/// not a million-entry inventory).
pub const MAX_CPU_SLOTS: u32 = 1024;

const ALLOWED: &str = "allowed: \"cpu:N\" (N CPU slots, 1..=1024), \"gpu:K\" (the GPU with index K) \
                       or \"gpu:K@MiB\" (with its memory in MiB, > 0)";

/// What kind of device a [`DeviceInfo`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A CPU slot: one run at a time, never shared.
    Cpu,
    /// A GPU: one whole-GPU run, or several runs holding shares that sum to at most 1.
    Gpu,
}

/// One device of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: DeviceId,
    pub kind: DeviceKind,
    /// Total memory in MiB, when known (GPUs only); used to pack shares by `gpu_mem_mb`.
    pub mem_mb: Option<u64>,
    /// The model name as NVML reports it (discovered GPUs only); shared, as ledgers clone it.
    pub model: Option<Arc<str>>,
}

impl DeviceInfo {
    /// CPU slot `cpu:index`.
    pub fn cpu(index: u32) -> Self {
        Self {
            id: DeviceId::Cpu(index),
            kind: DeviceKind::Cpu,
            mem_mb: None,
            model: None,
        }
    }

    /// GPU `gpu:index` with its memory in MiB when known.
    pub fn gpu(index: u32, mem_mb: Option<u64>) -> Self {
        Self {
            id: DeviceId::Gpu(index),
            kind: DeviceKind::Gpu,
            mem_mb,
            model: None,
        }
    }

    /// The same device with its model name.
    pub fn with_model(mut self, model: &str) -> Self {
        self.model = Some(Arc::from(model));
        self
    }
}

/// Why an inventory could not be built; each names the entry and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("devices[{index}] = {entry:?}: {problem}; {ALLOWED}")]
    BadEntry {
        index: usize,
        entry: String,
        problem: String,
    },
    #[error("devices[{index}] = {entry:?}: {device} is already listed by devices[{first}]")]
    Duplicate {
        index: usize,
        entry: String,
        device: DeviceId,
        first: usize,
    },
    #[error("device {device} is declared as {kind:?}, which does not match its id")]
    KindMismatch { device: DeviceId, kind: DeviceKind },
}

/// The devices of one host, in a stable order (as listed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    devices: Vec<DeviceInfo>,
    /// Built from the config's override list rather than discovered.
    from_override: bool,
}

impl Inventory {
    /// An inventory of the given (discovered) devices; ids must be unique and match their kind.
    pub fn new(devices: Vec<DeviceInfo>) -> Result<Self, InventoryError> {
        for (i, d) in devices.iter().enumerate() {
            let kind_ok = matches!(
                (&d.id, d.kind),
                (DeviceId::Cpu(_), DeviceKind::Cpu) | (DeviceId::Gpu(_), DeviceKind::Gpu)
            );
            if !kind_ok {
                return Err(InventoryError::KindMismatch {
                    device: d.id.clone(),
                    kind: d.kind,
                });
            }
            if let Some(first) = devices[..i].iter().position(|o| o.id == d.id) {
                return Err(InventoryError::Duplicate {
                    index: i,
                    entry: d.id.to_string(),
                    device: d.id.clone(),
                    first,
                });
            }
        }
        Ok(Self {
            devices,
            from_override: false,
        })
    }

    /// Parses the config override list: `cpu:N` adds N CPU slots `cpu:0..N`, `gpu:K` adds the GPU
    /// with index K, `gpu:K@24000` the same with 24000 MiB of memory. Entries are trimmed.
    pub fn from_spec(entries: &[String]) -> Result<Self, InventoryError> {
        let mut devices: Vec<DeviceInfo> = Vec::new();
        // Which entry declared each device, for duplicate messages.
        let mut origin: Vec<usize> = Vec::new();
        for (index, raw) in entries.iter().enumerate() {
            let bad = |problem: String| InventoryError::BadEntry {
                index,
                entry: raw.clone(),
                problem,
            };
            let entry = raw.trim();
            let Some((kind, rest)) = entry.split_once(':') else {
                return Err(bad("expected KIND:NUMBER".into()));
            };
            let (number, mem) = match rest.split_once('@') {
                Some((n, m)) => (n, Some(m)),
                None => (rest, None),
            };
            let number: u32 = number
                .parse()
                .map_err(|_| bad(format!("{number:?} is not a non-negative integer")))?;
            let new: Vec<DeviceInfo> = match kind {
                "cpu" => {
                    if mem.is_some() {
                        return Err(bad("memory (@MiB) applies to GPUs only".into()));
                    }
                    if number == 0 || number > MAX_CPU_SLOTS {
                        return Err(bad(format!(
                            "cpu:{number} must declare 1..={MAX_CPU_SLOTS} slots"
                        )));
                    }
                    (0..number).map(DeviceInfo::cpu).collect()
                }
                "gpu" => {
                    let mem_mb = match mem {
                        None => None,
                        Some(m) => match m.parse::<u64>() {
                            Ok(v) if v > 0 => Some(v),
                            _ => {
                                return Err(bad(format!(
                                    "memory {m:?} is not a positive integer (MiB)"
                                )));
                            }
                        },
                    };
                    vec![DeviceInfo::gpu(number, mem_mb)]
                }
                other => return Err(bad(format!("unknown device kind {other:?}"))),
            };
            for d in new {
                if let Some(pos) = devices.iter().position(|o| o.id == d.id) {
                    return Err(InventoryError::Duplicate {
                        index,
                        entry: raw.clone(),
                        device: d.id,
                        first: origin[pos],
                    });
                }
                devices.push(d);
                origin.push(index);
            }
        }
        Ok(Self {
            devices,
            from_override: true,
        })
    }

    /// Whether the devices come from the config's override list ([`Inventory::from_spec`])
    /// rather than discovery ([`Inventory::new`]).
    pub fn from_override(&self) -> bool {
        self.from_override
    }

    /// All devices, in inventory order.
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.devices
    }

    /// The device with this id.
    pub fn get(&self, id: &DeviceId) -> Option<&DeviceInfo> {
        self.devices.iter().find(|d| &d.id == id)
    }

    /// How many GPUs the inventory has.
    pub fn gpu_count(&self) -> usize {
        self.devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Gpu)
            .count()
    }

    /// How many CPU slots the inventory has.
    pub fn cpu_slots(&self) -> usize {
        self.devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Cpu)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(items: &[&str]) -> Result<Inventory, InventoryError> {
        Inventory::from_spec(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_cpu_slots_and_gpus_with_memory() {
        let inv = spec(&["cpu:2", " gpu:0 ", "gpu:3@24000"]).expect("valid");
        assert_eq!(
            inv.devices(),
            &[
                DeviceInfo::cpu(0),
                DeviceInfo::cpu(1),
                DeviceInfo::gpu(0, None),
                DeviceInfo::gpu(3, Some(24000)),
            ]
        );
        assert_eq!((inv.cpu_slots(), inv.gpu_count()), (2, 2));
        assert!(inv.from_override());
        assert_eq!(
            inv.get(&DeviceId::Gpu(3)).and_then(|d| d.mem_mb),
            Some(24000)
        );
    }

    #[test]
    fn errors_name_the_entry_and_what_is_allowed() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["gpu:0", "tpu:1"],
                "devices[1] = \"tpu:1\": unknown device kind \"tpu\"",
            ),
            (&["gpu0"], "devices[0] = \"gpu0\": expected KIND:NUMBER"),
            (&["gpu:x"], "\"x\" is not a non-negative integer"),
            (&["gpu:-1"], "\"-1\" is not a non-negative integer"),
            (&["cpu:0"], "cpu:0 must declare 1..=1024 slots"),
            (&["cpu:5000"], "must declare 1..=1024 slots"),
            (&["cpu:2@100"], "memory (@MiB) applies to GPUs only"),
            (&["gpu:1@0"], "memory \"0\" is not a positive integer (MiB)"),
            (&["gpu:1@lots"], "memory \"lots\""),
            (&[""], "devices[0] = \"\""),
        ];
        for (items, want) in cases {
            let err = spec(items).expect_err("must be rejected").to_string();
            assert!(err.contains(want), "{items:?}: {err}");
            assert!(err.contains("allowed: \"cpu:N\""), "{items:?}: {err}");
        }
    }

    #[test]
    fn duplicates_name_both_entries() {
        let err = spec(&["gpu:0", "cpu:1", "gpu:0@8000"]).expect_err("duplicate");
        assert_eq!(
            err.to_string(),
            "devices[2] = \"gpu:0@8000\": gpu:0 is already listed by devices[0]"
        );
        let err = spec(&["cpu:2", "cpu:1"]).expect_err("duplicate cpu");
        assert!(
            err.to_string()
                .contains("cpu:0 is already listed by devices[0]"),
            "{err}"
        );
    }

    #[test]
    fn new_rejects_mismatched_kind_and_duplicates() {
        let wrong = DeviceInfo {
            id: DeviceId::Gpu(0),
            kind: DeviceKind::Cpu,
            mem_mb: None,
            model: None,
        };
        assert!(matches!(
            Inventory::new(vec![wrong]),
            Err(InventoryError::KindMismatch { .. })
        ));
        let found = Inventory::new(vec![DeviceInfo::gpu(0, Some(8)).with_model("A")]).expect("ok");
        assert!(!found.from_override());
        assert_eq!(found.devices()[0].model.as_deref(), Some("A"));
        let dup = Inventory::new(vec![DeviceInfo::gpu(1, None), DeviceInfo::gpu(1, Some(5))]);
        assert!(matches!(
            dup,
            Err(InventoryError::Duplicate {
                index: 1,
                first: 0,
                ..
            })
        ));
    }
}
