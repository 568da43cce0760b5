//! The engine's records on the wire: a run's config facts, its `RunSummary`, a stored epoch's
//! `EpochRecord` and grid coordinates, each decoded once into the engine's type and converted
//! field by field into typed proto messages, so that no client reads engine JSON by key.

use cauda_plugins::metrics::ReliabilityBin;
use cauda_plugins::registry::Registry;
use cauda_plugins::spec::Coordinate;
use cauda_plugins::train::{
    AggregatedDistribution, ConfusionRecord, EpochRecord, EvalRecord, RunSummary, TauSweep,
};
use cauda_proto::v1;
use tonic::Status;

use crate::model::{RunFacts, StoredEpoch};
use crate::run_config::RunConfig;
use crate::store::MetricPoint;

/// What `v1::Run` says of its config, read from the stored config: for runs stored before
/// submission recorded it (`RunRecord::facts`). An unreadable config (which submission never
/// stores) has none.
pub fn config_facts(config_json: &str, registry: &Registry) -> RunFacts {
    RunConfig::from_json("run", config_json).map_or_else(
        |e| {
            tracing::error!(error = %e, "a stored run config is unreadable");
            RunFacts::default()
        },
        |config| config.facts(registry),
    )
}

pub fn coordinate_to_wire(c: &Coordinate) -> v1::GridCoordinate {
    coordinate_into_wire(c.clone())
}

pub fn coordinate_into_wire(c: Coordinate) -> v1::GridCoordinate {
    v1::GridCoordinate {
        key: c.key,
        value: c.value,
    }
}

fn bin_to_wire(b: &ReliabilityBin) -> v1::ReliabilityBin {
    v1::ReliabilityBin {
        count: b.count as u64,
        accuracy: b.accuracy,
        confidence: b.confidence,
    }
}

pub fn eval_to_wire(e: &EvalRecord) -> v1::EvalMetrics {
    v1::EvalMetrics {
        test_top1: e.test_top1,
        many: e.many,
        medium: e.medium,
        few: e.few,
        per_class: cauda_proto::per_class_to_wire(&e.per_class),
        val_top1: e.val_top1,
        test_top5: e.test_top5,
        ece: e.ece,
        nll: e.nll,
        worst_class: e.worst_class,
        reliability: e.reliability.iter().map(bin_to_wire).collect(),
    }
}

fn tau_sweep_to_wire(t: &TauSweep) -> v1::TauSweep {
    v1::TauSweep {
        taus: t.taus.clone(),
        test_top1: t.test_top1.clone(),
        val_top1: t.val_top1.clone().unwrap_or_default(),
        chosen: t.chosen,
    }
}

fn confusion_to_wire(c: &ConfusionRecord) -> v1::ConfusionMatrix {
    v1::ConfusionMatrix {
        // At most MAX_CONFUSION_CLASSES (1000) classes.
        classes: u32::try_from(c.classes).unwrap_or(u32::MAX),
        counts: c.counts.clone(),
    }
}

fn aggregation_to_wire(a: &AggregatedDistribution) -> v1::AggregatedDistribution {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    v1::AggregatedDistribution {
        distribution: a.distribution.clone(),
        weights: a.weights.clone(),
        epochs: count(a.epochs),
        images: count(a.images),
        top1: a.top1,
        mean_top1: a.mean_top1,
        many: a.many,
        medium: a.medium,
        few: a.few,
    }
}

pub fn summary_to_wire(s: &RunSummary) -> v1::RunSummary {
    v1::RunSummary {
        method: s.method.clone(),
        class_counts: s.class_counts.iter().map(|&c| c as u64).collect(),
        split_hash: s.split_hash.clone(),
        last: Some(eval_to_wire(&s.last)),
        best_test_top1: s.best_test_top1,
        val_selected_top1: s.val_selected_top1,
        tau_sweep: s.tau_sweep.as_ref().map(tau_sweep_to_wire),
        epochs: u32::try_from(s.epochs).unwrap_or(u32::MAX),
        images_per_sec: s.images_per_sec,
        confusion: s.confusion.as_ref().map(confusion_to_wire),
        test_time_aggregation: s
            .test_time_aggregation
            .iter()
            .map(aggregation_to_wire)
            .collect(),
    }
}

/// A stored metric point on the wire: its typed fields from the engine's record, and the
/// record with its attempt as JSON in `raw_json`. A point that does not decode (the worker API
/// stores only records that do) is an internal error naming it.
pub fn metric_to_wire(m: &MetricPoint) -> Result<v1::EpochMetrics, Status> {
    let unreadable = |e: crate::model::EpochCodecError| {
        Status::internal(format!(
            "epoch {} of stage {}: stored metrics unreadable: {e}",
            m.epoch, m.stage
        ))
    };
    let stored = StoredEpoch::decode(&m.doc).map_err(unreadable)?;
    let raw_json = stored.to_json().map_err(unreadable)?;
    let StoredEpoch { attempt, record } = stored;
    Ok(v1::EpochMetrics {
        stage: u32::from(m.stage),
        epoch: m.epoch,
        train_loss: record.train_loss,
        lr: record.lr,
        images_per_sec: record.images_per_sec,
        eval: record.eval.as_ref().map(eval_to_wire),
        attempt,
        raw_json,
        extra: record.extra.into_iter().collect(),
    })
}

/// An epoch as a worker reports it: the record in the typed fields, `raw_json` left empty
/// (the daemon reads the typed fields back in `grpc::epoch_wire`).
pub fn epoch_to_wire(record: &EpochRecord, attempt: u32) -> v1::EpochMetrics {
    v1::EpochMetrics {
        stage: u32::from(record.stage),
        epoch: u32::try_from(record.epoch).unwrap_or(u32::MAX),
        train_loss: record.train_loss,
        lr: record.lr,
        images_per_sec: record.images_per_sec,
        eval: record.eval.as_ref().map(eval_to_wire),
        raw_json: String::new(),
        attempt,
        extra: record
            .extra
            .iter()
            .map(|(name, value)| (name.clone(), *value))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_goes_on_the_wire_with_its_confusion_matrix_or_without_one() {
        let old = r#"{"method":"ce","class_counts":[50,5],"split_hash":"ab",
            "last":{"test_top1":0.75,"many":null,"medium":null,"few":0.5,"per_class":[1.0,0.5]},
            "best_test_top1":0.8,"val_selected_top1":null,"epochs":3,"images_per_sec":100.0}"#;
        let json = old.replace(
            "100.0}",
            r#"100.0,"confusion":{"classes":2,"counts":[2,0,1,1]}}"#,
        );
        let summary: RunSummary = serde_json::from_str(&json).unwrap();
        let wire = summary_to_wire(&summary);
        let matrix = wire.confusion.expect("the matrix is on the wire");
        assert_eq!(matrix.classes, 2);
        assert_eq!(matrix.counts, vec![2, 0, 1, 1]);
        assert_eq!(wire.class_counts, vec![50, 5]);

        // A summary stored before the matrix existed (or a command run's) has none.
        let summary: RunSummary = serde_json::from_str(old).unwrap();
        assert_eq!(summary_to_wire(&summary).confusion, None);
        assert!(summary_to_wire(&summary).test_time_aggregation.is_empty());
    }

    #[test]
    fn a_summary_goes_on_the_wire_with_its_test_time_aggregation() {
        let json = r#"{"method":"sade","class_counts":[50,5],"split_hash":"ab",
            "last":{"test_top1":0.75,"many":null,"medium":null,"few":0.5,"per_class":[1.0,0.5]},
            "best_test_top1":0.8,"val_selected_top1":null,"epochs":3,"images_per_sec":100.0,
            "test_time_aggregation":[{"distribution":"forward-50","weights":[0.6,0.3,0.1],
            "epochs":4,"images":36,"top1":0.9,"mean_top1":0.8,"many":null,"medium":null,
            "few":0.5}]}"#;
        let summary: RunSummary = serde_json::from_str(json).unwrap();
        let wire = summary_to_wire(&summary);
        let [a] = wire.test_time_aggregation.as_slice() else {
            panic!("one distribution: {:?}", wire.test_time_aggregation);
        };
        assert_eq!(a.distribution, "forward-50");
        assert_eq!(a.weights, vec![0.6, 0.3, 0.1]);
        assert_eq!((a.epochs, a.images), (4, 36));
        assert_eq!((a.top1, a.mean_top1), (0.9, 0.8));
        assert_eq!((a.many, a.medium, a.few), (None, None, Some(0.5)));
    }

    #[test]
    fn a_stored_epoch_goes_on_the_wire_field_by_field() {
        let json =
            br#"{"stage":1,"epoch":3,"train_loss":0.5,"lr":0.1,"images_per_sec":20.0,"attempt":2,
            "eval":{"test_top1":0.75,"many":0.9,"medium":null,"few":0.25,"per_class":[1.0,null],
            "test_top5":0.99,"ece":0.05,"nll":0.7,"worst_class":0.25,
            "reliability":[{"count":3,"accuracy":0.5,"confidence":0.4}]}}"#;
        // A point stored as JSON (before MessagePack) and the same point as stored now.
        let point = MetricPoint {
            epoch: 3,
            stage: 1,
            doc: json.to_vec(),
        };
        let stored = StoredEpoch::decode(json).unwrap();
        let now = MetricPoint {
            doc: stored.encode().unwrap(),
            ..point.clone()
        };
        assert_ne!(now.doc[0], b'{');
        let wire = metric_to_wire(&point).unwrap();
        // Equal message bytes (the NaN class makes `==` on the messages false).
        let bytes = |w: &v1::EpochMetrics| prost::Message::encode_to_vec(w);
        assert_eq!(bytes(&metric_to_wire(&now).unwrap()), bytes(&wire));
        let back: StoredEpoch = serde_json::from_str(&wire.raw_json).unwrap();
        assert_eq!(
            back, stored,
            "raw_json is the stored record with its attempt"
        );
        assert_eq!((wire.epoch, wire.stage, wire.attempt), (3, 1, 2));
        assert_eq!(
            (wire.train_loss, wire.lr, wire.images_per_sec),
            (0.5, 0.1, 20.0)
        );
        let eval = wire.eval.unwrap();
        assert_eq!(eval.test_top1, 0.75);
        assert_eq!(
            (eval.many, eval.medium, eval.few),
            (Some(0.9), None, Some(0.25))
        );
        assert_eq!(eval.per_class[0], 1.0);
        assert!(eval.per_class[1].is_nan());
        assert_eq!(
            (eval.test_top5, eval.ece, eval.nll),
            (Some(0.99), Some(0.05), Some(0.7))
        );
        assert_eq!(eval.worst_class, Some(0.25));
        assert_eq!(eval.reliability.len(), 1);
        assert_eq!(eval.reliability[0].count, 3);

        let broken = MetricPoint {
            doc: br#"{"epoch":"three"}"#.to_vec(),
            ..point
        };
        let err = metric_to_wire(&broken).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal);
        assert!(err.message().contains("epoch 3"), "{}", err.message());
    }
}
