//! Reported epochs, the daemon's busiest write: a worker reports each epoch's metrics (or a
//! backlog of several at once), fenced to its current attempt; each epoch is stored once with
//! its `Epoch` event in one durable write that the store shares with every report arriving at
//! the same time (group commit), and broadcast to watchers only once durable. No daemon lock:
//! reports of different runs never wait for each other, only for the shared flush.

use cauda_plugins::train::EpochRecord;

use super::{CoreError, Daemon, Result};
use crate::model::RunId;
use crate::store::{EpochDoc, EpochWrite, Event, EventKind};

/// One epoch as a worker reports it: the engine's record, decoded at the RPC edge, and the
/// epoch and stage the request names for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedEpoch {
    pub epoch: u32,
    /// 1, or 2 for a decoupled second stage.
    pub stage: u8,
    /// The engine's record of this epoch and stage.
    pub record: EpochRecord,
}

impl ReportedEpoch {
    /// The epoch and stage `record` names.
    pub fn of(record: EpochRecord) -> Self {
        Self {
            epoch: u32::try_from(record.epoch).unwrap_or(u32::MAX),
            stage: record.stage,
            record,
        }
    }
}

impl Daemon {
    /// Stores one epoch's metrics once; `true` when it was already stored. The record must be
    /// of the epoch and stage the report names; it is stored as a [`StoredEpoch`].
    pub fn report_epoch(&self, id: RunId, attempt: u32, reported: ReportedEpoch) -> Result<bool> {
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
                    doc: stored_doc(id, e, attempt)?,
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

/// What is stored for a reported epoch: the engine's record with the attempt, as a
/// [`StoredEpoch`]. A record of another epoch or stage than the report names is a bad report,
/// and nothing of its batch is stored.
fn stored_doc(id: RunId, e: &ReportedEpoch, attempt: u32) -> Result<EpochDoc> {
    let record = &e.record;
    if (record.epoch, record.stage) != (e.epoch as usize, e.stage) {
        return Err(CoreError::BadReport {
            run: id,
            reason: format!(
                "epoch {}: the record says epoch {} of stage {}, the request epoch {} of stage {}",
                e.epoch, record.epoch, record.stage, e.epoch, e.stage
            ),
        });
    }
    EpochDoc::encode(attempt, record).map_err(|err| CoreError::Internal(err.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::{DaemonSettings, NoopExecutor, SystemClock};
    use crate::model::StoredEpoch;
    use crate::scheduler::Inventory;
    use crate::store::{MemoryStore, SledStore, Store, StoreConfig};

    const SPEC: &str = "name = \"t\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n\
                        [model]\nbackbone = \"mlp\"\n[train]\nepochs = 3\n";

    fn epoch(epoch: u32) -> ReportedEpoch {
        ReportedEpoch::of(EpochRecord {
            stage: 1,
            epoch: epoch as usize,
            train_loss: 1.0,
            lr: 0.1,
            images_per_sec: 9.5,
            eval: None,
            extra: Default::default(),
        })
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
        assert!(d.report_epoch(run, 1, epoch(3)).unwrap());
        let mut bad = epoch(4);
        bad.record.epoch = 3;
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
        let mut e = epoch(2);
        e.record.train_loss = 0.5;
        e.record.eval = Some(cauda_plugins::train::EvalRecord {
            test_top1: 0.5,
            many: None,
            medium: None,
            few: None,
            per_class: vec![Some(0.5), None],
            val_top1: None,
            test_top5: None,
            ece: None,
            nll: None,
            worst_class: None,
            reliability: Vec::new(),
        });
        let stored = StoredEpoch::decode(stored_doc(RunId(1), &e, 3).unwrap().as_bytes()).unwrap();
        assert_eq!(stored.attempt, 3);
        assert_eq!(stored.record, e.record);
        // A record of another epoch or stage than the report names is refused.
        for (epoch, stage) in [(1, 1), (2, 2)] {
            let mut bad = e.clone();
            (bad.record.epoch, bad.record.stage) = (epoch, stage);
            let err = stored_doc(RunId(1), &bad, 3).unwrap_err();
            assert!(matches!(err, CoreError::BadReport { .. }), "{err}");
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
