//! Tests of the domain -> wire conversions that carry device facts: model names, memory and
//! utilization, and whether a device comes from the override list.

use super::*;
use crate::core::PlacedRun;
use crate::gpu::GpuStats;
use crate::model::RunId;
use crate::scheduler::DeviceInfo;

fn view(info: DeviceInfo, from_override: bool, stats: Option<GpuStats>) -> DeviceView {
    DeviceView {
        info,
        runs: Vec::new(),
        free_share: 1.0,
        from_override,
        stats,
    }
}

#[test]
fn a_discovered_gpu_carries_its_model_memory_and_load() {
    let mut d = view(
        DeviceInfo::gpu(1, Some(81_559)).with_model("NVIDIA H100 80GB HBM3"),
        false,
        Some(GpuStats {
            memory_used_mb: 20_000,
            memory_free_mb: 61_559,
            utilization_pct: Some(75),
        }),
    );
    d.runs.push(PlacedRun {
        run: RunId(7),
        name: "r".into(),
        grant: Grant {
            device: DeviceId::Gpu(1),
            share: 0.5,
            mem_mb: Some(8000),
        },
    });
    d.free_share = 0.5;
    let wire = device_to_wire(&d);
    assert_eq!(wire.device_id, "gpu:1");
    assert_eq!(wire.kind(), v1::DeviceKind::Gpu);
    assert_eq!(wire.name, "NVIDIA H100 80GB HBM3");
    assert_eq!(wire.memory_total_mb, Some(81_559));
    assert_eq!(wire.memory_used_mb, Some(20_000));
    assert_eq!(wire.utilization, Some(0.75));
    assert!(!wire.from_override);
    assert_eq!(wire.free_share, 0.5);
    assert_eq!(
        (wire.runs[0].run_id, wire.runs[0].share, wire.runs[0].mem_mb),
        (7, 0.5, Some(8000))
    );
}

#[test]
fn a_gpu_without_utilization_reports_memory_only() {
    let d = view(
        DeviceInfo::gpu(0, Some(16_000)).with_model("Tesla T4"),
        false,
        Some(GpuStats {
            memory_used_mb: 1,
            memory_free_mb: 15_999,
            utilization_pct: None,
        }),
    );
    let wire = device_to_wire(&d);
    assert_eq!((wire.memory_used_mb, wire.utilization), (Some(1), None));
}

#[test]
fn override_devices_say_so_and_carry_no_live_figures() {
    let wire = device_to_wire(&view(DeviceInfo::gpu(3, Some(24_000)), true, None));
    assert_eq!(wire.name, "gpu");
    assert_eq!(wire.memory_total_mb, Some(24_000));
    assert_eq!((wire.memory_used_mb, wire.utilization), (None, None));
    assert!(wire.from_override);
    let cpu = device_to_wire(&view(DeviceInfo::cpu(0), false, None));
    assert_eq!(
        (cpu.kind(), cpu.name.as_str()),
        (v1::DeviceKind::Cpu, "cpu")
    );
    assert_eq!(cpu.memory_total_mb, None);
    assert!(!cpu.from_override);
}
