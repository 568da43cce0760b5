//! The sled store's checkpoints, apart from its records because they are the one bulky,
//! chunked kind: a checkpoint is written in one transaction over its meta entry and its
//! `CHUNK_SIZE` chunks (the meta entry last, so a reader never sees a partial one), with the
//! retention sweep of `evicted_epochs` in the same transaction; reads stream single chunks or
//! reassemble a whole checkpoint and check its size. `impl Store for SledStore` delegates here.

use super::keys;
use super::sled_store::{SledStore, decode, encode};
use super::{CheckpointMeta, Result, StoreError, chunk_count, evicted_epochs};
use cauda_model::RunId;
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

impl SledStore {
    pub(super) fn write_checkpoint(
        &self,
        run: RunId,
        attempt: u32,
        epoch: u32,
        bytes: &[u8],
        is_best: bool,
    ) -> Result<CheckpointMeta> {
        const OP: &str = "put_checkpoint";
        let _w = self.write_lock();
        let what = format!(
            "a checkpoint of {:.1} MiB",
            bytes.len() as f64 / f64::from(1u32 << 20)
        );
        self.writable(OP, Some((bytes.len() as u64, &what)))?;
        self.run_exists(OP, run)?;
        let meta = CheckpointMeta {
            run,
            attempt,
            epoch,
            size: bytes.len() as u64,
            chunks: chunk_count(OP, bytes.len())?,
            is_best,
            sha256: super::sha256_hex(bytes),
        };
        let meta_bytes = encode(OP, || format!("checkpoint meta of run {run}"), &meta)?;
        let mut metas = self.read_checkpoint_metas(run)?;
        let replaced = metas
            .iter()
            .position(|m| m.epoch == epoch)
            .map(|i| metas.remove(i));
        let at = metas.partition_point(|m| m.epoch < epoch);
        metas.insert(at, meta.clone());
        let evicted: Vec<&CheckpointMeta> = {
            let gone = evicted_epochs(&metas, self.config.keep_checkpoints, epoch);
            metas.iter().filter(|m| gone.contains(&m.epoch)).collect()
        };
        let stale_chunks = replaced.map_or(0, |m| m.chunks);
        let t = self.t()?;
        (&t.checkpoints, &t.chunks)
            .transaction(|(metas_tx, chunks_tx)| {
                for (i, part) in bytes.chunks(super::CHUNK_SIZE).enumerate() {
                    chunks_tx.insert(&keys::chunk(run, epoch, i as u32), part)?;
                }
                for i in meta.chunks..stale_chunks {
                    chunks_tx.remove(&keys::chunk(run, epoch, i))?;
                }
                for old in &evicted {
                    metas_tx.remove(&keys::run_epoch(run, old.epoch))?;
                    for i in 0..old.chunks {
                        chunks_tx.remove(&keys::chunk(run, old.epoch, i))?;
                    }
                }
                // The meta entry makes the checkpoint visible: written last.
                metas_tx.insert(&keys::run_epoch(run, epoch), meta_bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(self.tx_err(OP))?;
        drop(t);
        let ticket = self.applied();
        drop(_w);
        self.wait_for(OP, ticket)?;
        tracing::debug!(run_id = %run, epoch, size = meta.size, evicted = evicted.len(), "stored a checkpoint");
        Ok(meta)
    }

    pub(super) fn read_checkpoint_metas(&self, run: RunId) -> Result<Vec<CheckpointMeta>> {
        const OP: &str = "list_checkpoints";
        let mut out = Vec::new();
        let t = self.t()?;
        for entry in t.checkpoints.scan_prefix(keys::id(run.0)) {
            let (k, v) = entry.map_err(self.err(OP))?;
            out.push(decode(OP, "checkpoints", &k, &v)?);
        }
        Ok(out)
    }

    pub(super) fn read_checkpoint_chunk(
        &self,
        run: RunId,
        epoch: u32,
        index: u32,
    ) -> Result<Option<Vec<u8>>> {
        const OP: &str = "checkpoint_chunk";
        let t = self.t()?;
        if !t
            .checkpoints
            .contains_key(keys::run_epoch(run, epoch))
            .map_err(self.err(OP))?
        {
            return Ok(None);
        }
        Ok(t.chunks
            .get(keys::chunk(run, epoch, index))
            .map_err(self.err(OP))?
            .map(|v| v.to_vec()))
    }

    pub(super) fn read_checkpoint(
        &self,
        run: RunId,
        epoch: u32,
    ) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        const OP: &str = "checkpoint";
        // Under the writer lock so that no retention sweep drops chunks while they are read.
        let _w = self.write_lock();
        let key = keys::run_epoch(run, epoch);
        let t = self.t()?;
        let Some(v) = t.checkpoints.get(key).map_err(self.err(OP))? else {
            return Ok(None);
        };
        let meta: CheckpointMeta = decode(OP, "checkpoints", &key, &v)?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        for i in 0..meta.chunks {
            let part = t
                .chunks
                .get(keys::chunk(run, epoch, i))
                .map_err(self.err(OP))?;
            let part = part.ok_or_else(|| StoreError::Corrupt {
                op: OP,
                key: format!("checkpoint_chunks/run {}/epoch {epoch}/chunk {i}", run.0),
                reason: format!("chunk missing from a checkpoint of {} chunks", meta.chunks),
            })?;
            bytes.extend_from_slice(&part);
        }
        if bytes.len() as u64 != meta.size {
            return Err(StoreError::Corrupt {
                op: OP,
                key: keys::describe("checkpoints", &key),
                reason: format!(
                    "chunks hold {} bytes, the meta entry says {}",
                    bytes.len(),
                    meta.size
                ),
            });
        }
        Ok(Some((meta, bytes)))
    }
}
