//! cauda's metric families (every name prefixed `cauda_`) and how they are kept: counters and
//! histograms are fed by the core as events happen ([`Metrics`] is its `Recorder`); the gauges
//! of state (runs, queue, devices) are set from a snapshot just before each rendering.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::core::{ExitCause, Recorder, Snapshot};
use crate::model::RunState;
use crate::scheduler::DeviceKind;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The daemon's metrics: a registry of families, fed by the core and rendered at each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
    oldest_wait: FloatGauge,
    devices_held: Family<KindLabel, FloatGauge>,
    devices_free: Family<KindLabel, FloatGauge>,
    dispatch: Histogram,
    epoch_ingest: Histogram,
    exits: Family<CauseLabel, Counter>,
    slurm_poll_errors: Counter,
    /// Setting the state gauges and encoding them is one step, so two scrapes never interleave.
    rendering: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, each label series present from the start (at 0), so a rate
    /// over a series that has not happened yet is 0 rather than missing.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cauda");
        let runs = Family::<StateLabel, Gauge>::default();
        registry.register("runs", "Runs in each state", runs.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Queued runs (waiting for devices or for the run they depend on)",
            queue_depth.clone(),
        );
        let oldest_wait = FloatGauge::default();
        registry.register_with_unit(
            "queue_oldest_wait",
            "How long the longest-waiting queued run has waited since its submission",
            Unit::Seconds,
            oldest_wait.clone(),
        );
        let devices_held = Family::<KindLabel, FloatGauge>::default();
        registry.register(
            "devices_held",
            "Devices held by running runs, by kind (a GPU share counts its fraction)",
            devices_held.clone(),
        );
        let devices_free = Family::<KindLabel, FloatGauge>::default();
        registry.register(
            "devices_free",
            "Devices free for new runs, by kind (a GPU share counts its fraction)",
            devices_free.clone(),
        );
        // 10 ms to about 46 hours, by factors of 4.
        let dispatch = Histogram::new(exponential_buckets(0.01, 4.0, 12));
        registry.register_with_unit(
            "dispatch_latency",
            "Time from a run's submission to the start of its first attempt",
            Unit::Seconds,
            dispatch.clone(),
        );
        // 0.5 ms to about 4 s, by factors of 2.
        let epoch_ingest = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "epoch_ingest",
            "Time to store one reported epoch (ReportEpoch: the metric and its event, durably)",
            Unit::Seconds,
            epoch_ingest.clone(),
        );
        let exits = Family::<CauseLabel, Counter>::default();
        registry.register(
            "worker_exits",
            "Ended worker attempts by cause (succeeded, failed, killed, oom, lost_heartbeat, cancelled)",
            exits.clone(),
        );
        let slurm_poll_errors = Counter::default();
        registry.register(
            "slurm_poll_errors",
            "Failed polls of Slurm (squeue) by the Slurm executor",
            slurm_poll_errors.clone(),
        );
        for cause in ExitCause::ALL {
            exits.get_or_create_owned(&CauseLabel {
                cause: cause.label(),
            });
        }
        for state in crate::core::RUN_STATES {
            runs.get_or_create_owned(&StateLabel {
                state: state_label(state),
            });
        }
        Self {
            registry,
            runs,
            queue_depth,
            oldest_wait,
            devices_held,
            devices_free,
            dispatch,
            epoch_ingest,
            exits,
            slurm_poll_errors,
            rendering: Mutex::new(()),
        }
    }

    /// The OpenMetrics text of every family, the state gauges taken from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let _one_at_a_time = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
        for (state, n) in &snapshot.runs {
            self.runs
                .get_or_create(&StateLabel {
                    state: state_label(*state),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let queued = snapshot.count(RunState::Queued);
        self.queue_depth
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.oldest_wait
            .set(snapshot.oldest_queued_ms as f64 / 1000.0);
        for kind in [DeviceKind::Cpu, DeviceKind::Gpu] {
            let (held, total) = snapshot
                .devices
                .iter()
                .filter(|(k, _)| *k == kind)
                .fold((0.0, 0.0), |(h, t), (_, share)| (h + share, t + 1.0));
            let label = KindLabel {
                kind: kind_label(kind),
            };
            self.devices_held.get_or_create(&label).set(held);
            self.devices_free.get_or_create(&label).set(total - held);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl Recorder for Metrics {
    fn dispatched(&self, waited: Duration) {
        self.dispatch.observe(waited.as_secs_f64());
    }

    fn epoch_stored(&self, took: Duration) {
        self.epoch_ingest.observe(took.as_secs_f64());
    }

    fn attempt_ended(&self, cause: ExitCause) {
        self.exits
            .get_or_create(&CauseLabel {
                cause: cause.label(),
            })
            .inc();
    }

    fn cluster_poll_failed(&self) {
        self.slurm_poll_errors.inc();
    }
}

fn state_label(state: RunState) -> &'static str {
    match state {
        RunState::Queued => "queued",
        RunState::Running => "running",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
    }
}

fn kind_label(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Cpu => "cpu",
        DeviceKind::Gpu => "gpu",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
            .parse()
            .expect("a number")
    }

    #[test]
    fn events_and_a_snapshot_render_as_openmetrics() {
        let m = Metrics::new();
        m.dispatched(Duration::from_millis(1500));
        m.epoch_stored(Duration::from_millis(3));
        m.epoch_stored(Duration::from_millis(4));
        m.attempt_ended(ExitCause::LostHeartbeat);
        m.cluster_poll_failed();
        let snapshot = Snapshot {
            runs: vec![(RunState::Queued, 2), (RunState::Succeeded, 5)],
            oldest_queued_ms: 2500,
            devices: vec![
                (DeviceKind::Cpu, 1.0),
                (DeviceKind::Cpu, 0.0),
                (DeviceKind::Gpu, 0.25),
            ],
        };
        let text = m.render(&snapshot);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(sample(&text, "cauda_runs{state=\"succeeded\"}"), 5.0);
        assert_eq!(sample(&text, "cauda_runs{state=\"failed\"}"), 0.0);
        assert_eq!(sample(&text, "cauda_queue_depth"), 2.0);
        assert_eq!(sample(&text, "cauda_queue_oldest_wait_seconds"), 2.5);
        assert_eq!(sample(&text, "cauda_devices_held{kind=\"cpu\"}"), 1.0);
        assert_eq!(sample(&text, "cauda_devices_free{kind=\"cpu\"}"), 1.0);
        assert_eq!(sample(&text, "cauda_devices_free{kind=\"gpu\"}"), 0.75);
        assert_eq!(sample(&text, "cauda_dispatch_latency_seconds_count"), 1.0);
        assert_eq!(sample(&text, "cauda_dispatch_latency_seconds_sum"), 1.5);
        assert_eq!(sample(&text, "cauda_epoch_ingest_seconds_count"), 2.0);
        assert_eq!(
            sample(&text, "cauda_worker_exits_total{cause=\"lost_heartbeat\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "cauda_worker_exits_total{cause=\"succeeded\"}"),
            0.0
        );
        assert_eq!(sample(&text, "cauda_slurm_poll_errors_total"), 1.0);
    }
}
