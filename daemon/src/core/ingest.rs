//! Reported epochs, the daemon's busiest write: a worker reports each epoch's metrics (or a
//! backlog of several at once), fenced to its current attempt; each epoch is stored once with
//! its `Epoch` event in one durable write that the store shares with every report arriving at
//! the same time (group commit), and broadcast to watchers only once durable. No daemon lock:
//! reports of different runs never wait for each other, only for the shared flush.

use cauda_plugins::train::EpochRecord;

use super::{CoreError, Daemon, Result};
use crate::model::{RunId, StoredEpoch};
use crate::store::{EpochWrite, Event, EventKind, MetricJson};

/// One epoch as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedEpoch {
    pub epoch: u32,
    /// 1, or 2 for a decoupled second stage.
    pub stage: u8,
    /// The engine's `EpochRecord` of this epoch and stage, as JSON.
    pub json: String,
}

impl Daemon {
    /// Stores one epoch's metrics once; `true` when it was already stored. `json` must be the
    /// engine's `EpochRecord` of that epoch and stage; it is stored as a [`StoredEpoch`].
    pub fn report_epoch(
        &self,
        id: RunId,
        attempt: u32,
        epoch: u32,
        stage: u8,
        json: &str,
    ) -> Result<bool> {
        let reported = ReportedEpoch {
            epoch,
            stage,
            json: json.to_string(),
        };
        let duplicates = self.report_epochs(id, attempt, std::slice::from_ref(&reported))?;
        Ok(duplicates.first().copied().unwrap_or(true))
    }

    /// `report_epoch` for several epochs of one attempt, stored in one durable write (all or
    /// none: a malformed record refuses the whole call); per epoch, `true` when it was already
    /// stored.
    pub fn report_epochs(
        &self,
        id: RunId,
        attempt: u32,
        epochs: &[ReportedEpoch],
    ) -> Result<Vec<bool>> {
        let started = std::time::Instant::now();
        self.fence_brief(id, attempt)?;
        self.saw(id, attempt);
        let at = self.clock.now();
        let writes = epochs
            .iter()
            .map(|e| {
                Ok(EpochWrite {
                    epoch: e.epoch,
                    stage: e.stage,
                    json: stored_bytes(id, e, attempt)?,
                    event: Event {
                        at,
                        kind: EventKind::Epoch {
                            epoch: e.epoch,
                            stage: e.stage,
                            attempt,
                        },
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let seqs = self.store.append_metrics_with_events(id, &writes)?;
        for (write, seq) in writes.iter().zip(&seqs) {
            if let Some(seq) = seq {
                self.broadcast(id, *seq, &write.event);
                self.recorder.epoch_stored(started.elapsed());
            }
        }
        Ok(seqs.iter().map(Option::is_none).collect())
    }
}

/// The bytes stored for a reported epoch: the engine's `EpochRecord` (decoded, so a report
/// that is not one, or names another epoch or stage than the request, is a bad report and
/// nothing of it is stored) with the attempt, as a [`StoredEpoch`].
fn stored_bytes(id: RunId, e: &ReportedEpoch, attempt: u32) -> Result<MetricJson> {
    let bad = |reason: String| CoreError::BadReport {
        run: id,
        reason: format!("epoch {}: {reason}", e.epoch),
    };
    let record: EpochRecord = serde_json::from_str(&e.json)
        .map_err(|err| bad(format!("metrics are not the engine's EpochRecord: {err}")))?;
    if (record.epoch, record.stage) != (e.epoch as usize, e.stage) {
        return Err(bad(format!(
            "the record says epoch {} of stage {}, the request epoch {} of stage {}",
            record.epoch, record.stage, e.epoch, e.stage
        )));
    }
    MetricJson::encode(&StoredEpoch { attempt, record })
        .map_err(|err| CoreError::Internal(err.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::{DaemonSettings, NoopExecutor, SystemClock};
    use crate::scheduler::Inventory;
    use crate::store::{MemoryStore, SledStore, Store, StoreConfig};

    const SPEC: &str = "name = \"t\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n\
                        [model]\nbackbone = \"mlp\"\n[train]\nepochs = 3\n";

    fn epoch(epoch: u32) -> ReportedEpoch {
        ReportedEpoch {
            epoch,
            stage: 1,
            json: format!(
                r#"{{"stage":1,"epoch":{epoch},"train_loss":1.0,"lr":0.1,"images_per_sec":9.5}}"#
            ),
        }
    }

    /// A batch is stored once per epoch, all or nothing, fenced, on both stores.
    fn batches_are_idempotent_all_or_nothing_and_fenced(store: Arc<dyn Store>) {
        let settings = DaemonSettings {
            inventory: Inventory::from_spec(&["cpu:1".to_string()]).unwrap(),
            ..DaemonSettings::default()
        };
        let d = Daemon::new(
            store.clone(),
            settings,
            Arc::new(SystemClock),
            Arc::new(NoopExecutor),
        );
        let run = d.submit("t", SPEC, "ada", None).unwrap().runs[0].0;
        assert_eq!(
            d.report_epochs(run, 1, &[epoch(1), epoch(2), epoch(2)])
                .unwrap(),
            [false, false, true],
            "an epoch twice in one batch is stored once"
        );
        assert_eq!(
            d.report_epochs(run, 1, &[epoch(2), epoch(3)]).unwrap(),
            [true, false]
        );
        assert!(d.report_epoch(run, 1, 3, 1, &epoch(3).json).unwrap());
        let mut bad = epoch(4);
        bad.json = "[1]".into();
        assert!(matches!(
            d.report_epochs(run, 1, &[epoch(5), bad]),
            Err(CoreError::BadReport { .. })
        ));
        assert!(matches!(
            d.report_epochs(run, 2, &[epoch(6)]),
            Err(CoreError::StaleAttempt { .. })
        ));
        let stored: Vec<u32> = store
            .metrics(run)
            .unwrap()
            .iter()
            .map(|m| m.epoch)
            .collect();
        assert_eq!(stored, [1, 2, 3], "nothing of a refused batch is stored");
        let events = store.events(run, 0).unwrap();
        let epochs: Vec<(u64, u32)> = events
            .iter()
            .filter_map(|(seq, e)| match e.kind {
                EventKind::Epoch { epoch, .. } => Some((*seq, epoch)),
                _ => None,
            })
            .collect();
        assert_eq!(epochs.len(), 3, "one event per stored epoch: {epochs:?}");
        let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn a_report_is_stored_as_the_typed_record_with_its_attempt() {
        let e = ReportedEpoch {
            epoch: 2,
            stage: 1,
            json: r#"{"stage":1,"epoch":2,"train_loss":0.5,"lr":0.1,"images_per_sec":9.5,
                "eval":{"test_top1":0.5,"many":null,"medium":null,"few":null,"per_class":[0.5,null]}}"#
                .into(),
        };
        let stored =
            StoredEpoch::decode(stored_bytes(RunId(1), &e, 3).unwrap().as_bytes()).unwrap();
        assert_eq!(stored.attempt, 3);
        assert_eq!((stored.record.epoch, stored.record.train_loss), (2, 0.5));
        let eval = stored.record.eval.unwrap();
        assert_eq!(eval.per_class, [Some(0.5), None]);
        let bad = |json: &str, epoch: u32| ReportedEpoch {
            epoch,
            stage: 1,
            json: json.into(),
        };
        for (json, epoch) in [
            ("[1]", 1),
            ("{", 1),
            ("", 1),
            (r#"{"stage":1,"epoch":1}"#, 1),
            (
                r#"{"stage":1,"epoch":"one","train_loss":1,"lr":1,"images_per_sec":1}"#,
                1,
            ),
            (
                r#"{"stage":1,"epoch":1,"train_loss":1,"lr":1,"images_per_sec":1}"#,
                2,
            ),
            (
                r#"{"stage":2,"epoch":1,"train_loss":1,"lr":1,"images_per_sec":1}"#,
                1,
            ),
        ] {
            let err = stored_bytes(RunId(1), &bad(json, epoch), 3).unwrap_err();
            assert!(
                matches!(err, CoreError::BadReport { .. }),
                "{json:?}: {err}"
            );
        }
    }

    #[test]
    fn batches_on_the_memory_store() {
        batches_are_idempotent_all_or_nothing_and_fenced(Arc::new(MemoryStore::default()));
    }

    #[test]
    fn batches_on_the_sled_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path().join("db"), StoreConfig::default()).unwrap();
        batches_are_idempotent_all_or_nothing_and_fenced(Arc::new(store));
    }
}
