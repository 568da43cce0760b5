//! An attempt's checkpoints: an upload is stored once (digest checked, best flag from the stored
//! metrics), and a registering worker resumes from the run's latest checkpoint or, for a stage 2
//! starting out, its stage 1's final one.

use super::{CoreError, Daemon, Result};
use crate::model::{RunId, RunRecord, StoredEpoch};
use crate::store::CheckpointMeta;

impl Daemon {
    /// Stores an uploaded checkpoint after checking its digest; `true` when the same checkpoint
    /// (epoch and digest) was already stored. The best flag follows the stored metrics: the
    /// checkpoint is best when its epoch has the highest evaluated top-1 so far.
    pub fn store_checkpoint(
        &self,
        id: RunId,
        attempt: u32,
        epoch: u32,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<bool> {
        self.fence_brief(id, attempt)?;
        self.saw(id, attempt);
        let digest = crate::store::sha256_hex(bytes);
        if !sha256.eq_ignore_ascii_case(&digest) {
            return Err(CoreError::CorruptUpload {
                run: id,
                reason: format!(
                    "checkpoint of epoch {epoch}: sha256 {digest} of the {} bytes received, {sha256} announced",
                    bytes.len()
                ),
            });
        }
        if self
            .store
            .list_checkpoints(id)?
            .iter()
            .any(|m| m.epoch == epoch && m.sha256 == digest)
        {
            return Ok(true);
        }
        let is_best = self.is_best_epoch(id, epoch)?;
        self.store
            .put_checkpoint(id, attempt, epoch, bytes, is_best)?;
        Ok(false)
    }

    /// Whether `epoch` has the highest evaluated test top-1 of the run's stored metrics.
    fn is_best_epoch(&self, id: RunId, epoch: u32) -> Result<bool> {
        let mut mine = None;
        let mut others = Vec::new();
        for point in self.store.metrics(id)? {
            let stored = StoredEpoch::decode(&point.doc).map_err(|e| {
                CoreError::Internal(format!(
                    "run {id} epoch {}: stored metrics unreadable: {e}",
                    point.epoch
                ))
            })?;
            let top1 = stored.record.eval.map(|e| e.test_top1);
            if point.epoch == epoch {
                mine = top1;
            } else {
                others.extend(top1);
            }
        }
        Ok(mine.is_some_and(|mine| others.iter().all(|&other| other <= mine)))
    }

    /// The checkpoint a registered worker resumes from, with its bytes.
    pub fn resume_checkpoint(
        &self,
        id: RunId,
        attempt: u32,
    ) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        let run = self.fence(id, attempt)?;
        match self.resume_meta(&run)? {
            Some(meta) => Ok(self.store.checkpoint(meta.run, meta.epoch)?),
            None => Ok(None),
        }
    }

    /// Where an attempt starts: the run's latest checkpoint, else (a stage-2 run) the final
    /// checkpoint of the run it depends on, else nothing.
    pub(super) fn resume_meta(&self, run: &RunRecord) -> Result<Option<CheckpointMeta>> {
        if let Some(own) = self.store.list_checkpoints(run.id)?.into_iter().last() {
            return Ok(Some(own));
        }
        match run.depends_on {
            Some(dep) => Ok(self.store.list_checkpoints(dep)?.into_iter().last()),
            None => Ok(None),
        }
    }
}
