//! Reported epochs, the daemon's busiest write: a worker reports each epoch's metrics (or a
//! backlog of several at once), fenced to its current attempt; each epoch is stored once with
//! its `Epoch` event in one durable write that the store shares with every report arriving at
//! the same time (group commit), and broadcast to watchers only once durable. No daemon lock:
//! reports of different runs never wait for each other, only for the shared flush.

use super::{CoreError, Daemon, Result};
use crate::model::RunId;
use crate::store::{EpochWrite, Event, EventKind};

/// One epoch as a worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedEpoch {
    pub epoch: u32,
    /// 1, or 2 for a decoupled second stage.
    pub stage: u8,
    /// The engine's `EpochRecord` JSON (an object).
    pub json: String,
}

impl Daemon {
    /// Stores one epoch's metrics once; `true` when it was already stored. The stored JSON is
    /// the engine's record with the `attempt` key added.
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
                    json: with_attempt(id, e, attempt)?,
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

/// The engine's record with the `attempt` key set (a record that is not a JSON object is a
/// bad report).
fn with_attempt(id: RunId, e: &ReportedEpoch, attempt: u32) -> Result<Vec<u8>> {
    let mut value: serde_json::Value =
        serde_json::from_str(&e.json).map_err(|err| CoreError::BadReport {
            run: id,
            reason: format!("epoch {}: metrics are not JSON: {err}", e.epoch),
        })?;
    let Some(object) = value.as_object_mut() else {
        return Err(CoreError::BadReport {
            run: id,
            reason: format!("epoch {}: metrics are not a JSON object", e.epoch),
        });
    };
    object.insert("attempt".into(), attempt.into());
    serde_json::to_vec(&value).map_err(|err| CoreError::Internal(err.to_string()))
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
            json: format!(r#"{{"epoch":{epoch},"train_loss":1.0}}"#),
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
