//! The run's summary as `Finish` carries it: JSON within [`MAX_SUMMARY_BYTES`]. A confusion
//! matrix of the engine's largest kept size (1000 classes) is about 2 MB of it; should a summary
//! still pass the bound, it goes without its matrix: a finished run is never failed for a
//! reporting extra.

use cauda_plugins::train::{RunSummary, TrainError};

use crate::grpc::MAX_SUMMARY_BYTES;

/// `summary` as JSON, without its confusion matrix if it would pass [`MAX_SUMMARY_BYTES`].
pub fn summary_json(summary: &RunSummary) -> Result<String, TrainError> {
    let json =
        |s: &RunSummary| serde_json::to_string(s).map_err(|e| TrainError::Sink(e.to_string()));
    let full = json(summary)?;
    if full.len() <= MAX_SUMMARY_BYTES || summary.confusion.is_none() {
        return Ok(full);
    }
    eprintln!(
        "the summary with its confusion matrix is {} bytes, over the {MAX_SUMMARY_BYTES} a \
         Finish carries: it is sent without the matrix",
        full.len()
    );
    let lean = RunSummary {
        confusion: None,
        ..summary.clone()
    };
    json(&lean)
}

#[cfg(test)]
mod tests {
    use cauda_plugins::train::{ConfusionRecord, MAX_CONFUSION_CLASSES};
    use cauda_proto::v1;
    use prost::Message;

    use super::*;
    use crate::grpc::MAX_WORKER_MESSAGE_BYTES;

    /// A summary of `classes` classes whose every matrix cell holds `cell`.
    fn summary(classes: usize, cell: u64) -> RunSummary {
        let per_class = vec![Some(0.123_456_79_f32); classes];
        let json = serde_json::json!({
            "method": "ce", "class_counts": vec![1280; classes], "split_hash": "ab".repeat(32),
            "last": {"test_top1": 0.5, "many": 0.5, "medium": 0.5, "few": 0.5,
                     "per_class": per_class},
            "best_test_top1": 0.5, "val_selected_top1": 0.5, "epochs": 90,
            "images_per_sec": 1000.0,
        });
        let mut s: RunSummary = serde_json::from_value(json).unwrap();
        s.confusion = Some(ConfusionRecord {
            classes,
            counts: vec![cell; classes * classes],
        });
        s
    }

    #[test]
    fn the_largest_kept_matrix_fits_in_a_finish_the_daemon_decodes() {
        // 1000 classes, every cell 9999: ten billion test images, more than any test set has.
        let s = summary(MAX_CONFUSION_CLASSES, 9999);
        let json = summary_json(&s).unwrap();
        assert!(json.len() <= MAX_SUMMARY_BYTES, "{} bytes", json.len());
        let back: RunSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back.confusion, s.confusion, "sent with its matrix");
        // What the daemon's Worker service decodes (its limit is on the encoded message).
        let finish = v1::FinishRequest {
            run_id: u64::MAX,
            attempt: u32::MAX,
            outcome: Some(v1::finish_request::Outcome::Success(v1::FinishSuccess {
                summary_json: json,
            })),
        };
        assert!(
            finish.encoded_len() <= MAX_WORKER_MESSAGE_BYTES,
            "{} bytes",
            finish.encoded_len()
        );
    }

    #[test]
    fn a_summary_over_the_bound_goes_without_its_matrix() {
        // 1000 x 1000 cells of 20 digits each: 21 MB of JSON.
        let s = summary(MAX_CONFUSION_CLASSES, u64::MAX);
        let json = summary_json(&s).unwrap();
        assert!(json.len() <= MAX_SUMMARY_BYTES, "{} bytes", json.len());
        let back: RunSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(back.confusion, None);
        assert_eq!(back.last, s.last, "everything else is kept");
    }
}
