//! A reported epoch off the worker API: the engine's `EpochRecord` from `EpochMetrics`' typed
//! fields, checked once here at the edge (the core and the store take the typed record). The
//! typed fields replaced the record's JSON on the hot path, where parsing and re-encoding a
//! hundred per-class floats was most of an epoch's CPU; a worker built before them still sends
//! the JSON in `raw_json`, which is read as before.

use std::collections::BTreeMap;

use cauda_plugins::metrics::ReliabilityBin;
use cauda_plugins::train::{EpochRecord, EvalRecord};
use cauda_proto::v1;
use tonic::Status;

use crate::command::protocol::{MAX_CLASSES, MAX_METRICS, metric_ok};
use crate::core::ReportedEpoch;

/// A reported epoch's checks and its record: stage 1 or 2, epochs counting from 1, then the
/// typed fields (or a legacy worker's `raw_json`) as the engine's record.
pub fn reported_epoch(rpc: &str, metrics: v1::EpochMetrics) -> Result<ReportedEpoch, Status> {
    let bad = |reason: String| Status::invalid_argument(format!("{rpc}: {reason}"));
    let stage = u8::try_from(metrics.stage)
        .ok()
        .filter(|s| (1..=2).contains(s))
        .ok_or_else(|| {
            bad(format!(
                "stage {} is out of range; allowed 1 ..= 2",
                metrics.stage
            ))
        })?;
    if metrics.epoch == 0 {
        return Err(bad("epochs count from 1; got 0".into()));
    }
    let epoch = metrics.epoch;
    let record = if metrics.raw_json.is_empty() {
        record_from_wire(stage, metrics)
            .map_err(|reason| bad(format!("epoch {epoch}: {reason}")))?
    } else {
        serde_json::from_str(&metrics.raw_json).map_err(|e| {
            bad(format!(
                "epoch {epoch}: raw_json is not the engine's EpochRecord: {e}"
            ))
        })?
    };
    Ok(ReportedEpoch {
        epoch,
        stage,
        record,
    })
}

/// The engine's record of typed fields: accuracies are fractions in [0, 1] (a class without
/// test images is NaN on the wire, `None` in the record); extra metrics are bounded as the
/// command-run protocol bounds them.
fn record_from_wire(stage: u8, m: v1::EpochMetrics) -> Result<EpochRecord, String> {
    if m.extra.len() > MAX_METRICS {
        return Err(format!(
            "{} extra metrics; at most {MAX_METRICS}",
            m.extra.len()
        ));
    }
    if let Some((name, value)) = m.extra.iter().find(|(n, v)| !metric_ok(n, **v)) {
        return Err(format!(
            "extra metric {name:?} = {value}: a name of 1 to 64 bytes and a finite value"
        ));
    }
    Ok(EpochRecord {
        stage,
        epoch: m.epoch as usize,
        train_loss: m.train_loss,
        lr: m.lr,
        images_per_sec: m.images_per_sec,
        eval: m.eval.map(eval_from_wire).transpose()?,
        extra: m.extra.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

fn eval_from_wire(e: v1::EvalMetrics) -> Result<EvalRecord, String> {
    if e.per_class.len() > MAX_CLASSES {
        return Err(format!(
            "eval: {} per-class accuracies; at most {MAX_CLASSES}",
            e.per_class.len()
        ));
    }
    let fraction = |name: &str, v: Option<f32>| match v {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(format!("eval: {name} = {v} is not a fraction in [0, 1]"))
        }
        _ => Ok(v),
    };
    fraction("test_top1", Some(e.test_top1))?;
    for (name, v) in [
        ("many", e.many),
        ("medium", e.medium),
        ("few", e.few),
        ("val_top1", e.val_top1),
        ("test_top5", e.test_top5),
        ("ece", e.ece),
        ("worst_class", e.worst_class),
    ] {
        fraction(name, v)?;
    }
    if let Some((class, v)) = e
        .per_class
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_nan() && !(0.0..=1.0).contains(*v))
    {
        return Err(format!(
            "eval: class {class}'s accuracy {v} is not a fraction in [0, 1] (NaN: no test image)"
        ));
    }
    Ok(EvalRecord {
        test_top1: e.test_top1,
        many: e.many,
        medium: e.medium,
        few: e.few,
        per_class: cauda_proto::per_class_from_wire(&e.per_class),
        val_top1: e.val_top1,
        test_top5: e.test_top5,
        ece: e.ece,
        nll: e.nll,
        worst_class: e.worst_class,
        reliability: e
            .reliability
            .into_iter()
            .map(|b| ReliabilityBin {
                count: usize::try_from(b.count).unwrap_or(usize::MAX),
                accuracy: b.accuracy,
                confidence: b.confidence,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::engine_wire::epoch_to_wire;

    fn record() -> EpochRecord {
        EpochRecord {
            stage: 2,
            epoch: 7,
            train_loss: 0.25,
            lr: 1e-3,
            images_per_sec: 300.5,
            eval: Some(EvalRecord {
                test_top1: 0.5,
                many: Some(0.75),
                medium: None,
                few: Some(0.125),
                per_class: vec![Some(1.0), None, Some(0.0)],
                val_top1: Some(0.5),
                test_top5: Some(0.875),
                ece: Some(0.0625),
                nll: Some(1.5),
                worst_class: Some(0.0),
                reliability: vec![ReliabilityBin {
                    count: 3,
                    accuracy: 0.5,
                    confidence: 0.625,
                }],
            }),
            extra: [("grad_norm".to_string(), 2.5)].into(),
        }
    }

    /// What a worker sends is what the daemon reads: every field, a class without test images
    /// included, through protobuf and back.
    #[test]
    fn a_record_crosses_the_worker_api_whole() {
        let sent = epoch_to_wire(&record(), 3);
        assert!(sent.raw_json.is_empty(), "the typed fields carry it");
        let bytes = prost::Message::encode_to_vec(&sent);
        let got: v1::EpochMetrics = prost::Message::decode(bytes.as_slice()).unwrap();
        let reported = reported_epoch("ReportEpoch", got).unwrap();
        assert_eq!((reported.epoch, reported.stage), (7, 2));
        assert_eq!(reported.record, record());
    }

    /// A worker built before the typed fields sends the record's JSON; it still reads.
    #[test]
    fn a_legacy_workers_json_still_reads() {
        let json = serde_json::to_string(&record()).unwrap();
        let sent = v1::EpochMetrics {
            stage: 2,
            epoch: 7,
            raw_json: json,
            ..Default::default()
        };
        assert_eq!(
            reported_epoch("ReportEpoch", sent).unwrap().record,
            record()
        );
        let broken = v1::EpochMetrics {
            stage: 1,
            epoch: 1,
            raw_json: "[1]".into(),
            ..Default::default()
        };
        let err = reported_epoch("ReportEpoch", broken).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("raw_json"), "{}", err.message());
    }

    /// Bad typed input is refused with the field that is wrong, never stored.
    #[test]
    fn bad_typed_fields_are_refused_by_name() {
        let with = |f: &dyn Fn(&mut v1::EpochMetrics)| {
            let mut m = epoch_to_wire(&record(), 1);
            f(&mut m);
            reported_epoch("ReportEpochs", m)
                .unwrap_err()
                .message()
                .to_string()
        };
        type Change<'a> = &'a dyn Fn(&mut v1::EpochMetrics);
        let cases: [(Change, &str); 7] = [
            (&|m| m.stage = 3, "stage 3"),
            (&|m| m.epoch = 0, "count from 1"),
            (&|m| m.eval.as_mut().unwrap().test_top1 = 1.5, "test_top1"),
            (&|m| m.eval.as_mut().unwrap().few = Some(-0.1), "few"),
            (&|m| m.eval.as_mut().unwrap().per_class[2] = 2.0, "class 2"),
            (
                &|m| {
                    m.extra.insert(String::new(), 1.0);
                },
                "extra metric",
            ),
            (
                &|m| {
                    m.extra = (0..=MAX_METRICS).map(|i| (format!("m{i}"), 1.0)).collect();
                },
                "at most 64",
            ),
        ];
        for (change, want) in cases {
            let message = with(change);
            assert!(message.contains(want), "{want:?} not in {message:?}");
            assert!(message.starts_with("ReportEpochs"), "{message}");
        }
        let nan = with(&|m| m.extra.insert("loss2".into(), f64::NAN).map_or((), |_| ()));
        assert!(nan.contains("finite"), "{nan}");
    }
}
