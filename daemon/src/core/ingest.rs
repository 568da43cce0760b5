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
/// bad report). The record is scanned, not rebuilt: `"attempt":N` is written after its `{`,
/// so its numbers keep their text and no tree of values is built per epoch (this was the
/// largest cost of a report after the gRPC call itself). A record that already has an
/// `attempt` key takes the slow path, which replaces it.
fn with_attempt(id: RunId, e: &ReportedEpoch, attempt: u32) -> Result<Vec<u8>> {
    let bad = |reason: String| CoreError::BadReport {
        run: id,
        reason: format!("epoch {}: {reason}", e.epoch),
    };
    let shape: ObjectShape = serde_json::from_str(&e.json).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => bad("metrics are not a JSON object".into()),
        _ => bad(format!("metrics are not JSON: {err}")),
    })?;
    if shape.has_attempt {
        let mut value: serde_json::Value =
            serde_json::from_str(&e.json).map_err(|err| bad(err.to_string()))?;
        if let Some(object) = value.as_object_mut() {
            object.insert("attempt".into(), attempt.into());
        }
        return serde_json::to_vec(&value).map_err(|err| CoreError::Internal(err.to_string()));
    }
    let json = e.json.as_bytes();
    let open = json.iter().position(|&b| b == b'{').unwrap_or(0);
    let mut out = Vec::with_capacity(json.len() + 16);
    out.extend_from_slice(&json[..=open]);
    out.extend_from_slice(format!("\"attempt\":{attempt}").as_bytes());
    if shape.entries > 0 {
        out.push(b',');
    }
    out.extend_from_slice(&json[open + 1..]);
    Ok(out)
}

/// What `with_attempt` needs to know of a record: that it is an object, how many entries it
/// has and whether one is `attempt` (values are skipped, not built).
struct ObjectShape {
    entries: usize,
    has_attempt: bool,
}

impl<'de> serde::Deserialize<'de> for ObjectShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
    type Value = ObjectShape;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<ObjectShape, A::Error> {
        let mut shape = ObjectShape {
            entries: 0,
            has_attempt: false,
        };
        while let Some(is_attempt) = map.next_key_seed(IsAttempt)? {
            map.next_value::<serde::de::IgnoredAny>()?;
            shape.entries += 1;
            shape.has_attempt |= is_attempt;
        }
        Ok(shape)
    }
}

/// A map key read as "is it `attempt`?", without allocating it.
struct IsAttempt;

impl<'de> serde::de::DeserializeSeed<'de> for IsAttempt {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for IsAttempt {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> std::result::Result<bool, E> {
        Ok(key == "attempt")
    }
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
    fn the_attempt_is_written_into_the_record() {
        let parse = |json: &str| -> serde_json::Value {
            let e = ReportedEpoch {
                epoch: 1,
                stage: 1,
                json: json.into(),
            };
            serde_json::from_slice(&with_attempt(RunId(1), &e, 3).unwrap()).unwrap()
        };
        let v = parse(r#" {"epoch":1,"eval":{"per_class":[0.5,null]},"lr":0.1}"#);
        assert_eq!(v["attempt"], 3);
        assert_eq!(v["eval"]["per_class"][0], 0.5);
        assert_eq!(v.as_object().unwrap().len(), 4);
        assert_eq!(parse("{}"), serde_json::json!({"attempt": 3}));
        assert_eq!(
            parse(r#"{"attempt":1,"a":2}"#),
            serde_json::json!({"attempt": 3, "a": 2})
        );
        for bad in ["[1]", "1", "{", r#"{"a":}"#, ""] {
            let e = ReportedEpoch {
                epoch: 1,
                stage: 1,
                json: bad.into(),
            };
            assert!(
                matches!(
                    with_attempt(RunId(1), &e, 3),
                    Err(CoreError::BadReport { .. })
                ),
                "{bad:?}"
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
