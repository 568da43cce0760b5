//! `ExportRun` as an adapter: validate the request, run the core's export off the async
//! threads (it rebuilds a model), and stream the bytes as an `ExportMeta` then data chunks of
//! at most 1 MiB, like `GetCheckpoint`.

use std::pin::Pin;
use std::sync::Arc;

use cauda_plugins::export::ExportFormat;
use cauda_proto::v1;
use tokio_stream::Stream;
use tonic::Status;

use crate::core::{CheckpointChoice, Daemon, ExportError, Exported};
use crate::model::RunId;

/// The stream `ExportRun` answers with.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<v1::ExportChunk, Status>> + Send>>;

impl From<ExportError> for Status {
    fn from(err: ExportError) -> Self {
        match err {
            ExportError::Core(core) => core.into(),
            ExportError::Rebuild { .. } => Status::failed_precondition(err.to_string()),
        }
    }
}

fn format_from_wire(format: v1::ExportFormat) -> Result<ExportFormat, Status> {
    match format {
        v1::ExportFormat::Safetensors => Ok(ExportFormat::Safetensors),
        v1::ExportFormat::Burn => Ok(ExportFormat::Burn),
        v1::ExportFormat::Unspecified => Err(Status::invalid_argument(
            "format: say which format to export (safetensors or burn)",
        )),
    }
}

fn format_to_wire(format: ExportFormat) -> v1::ExportFormat {
    match format {
        ExportFormat::Safetensors => v1::ExportFormat::Safetensors,
        ExportFormat::Burn => v1::ExportFormat::Burn,
    }
}

/// The messages of an export stream: the meta, then the data in order.
pub fn chunks(exported: Exported) -> Vec<v1::ExportChunk> {
    let meta = v1::ExportMeta {
        run_id: exported.run.0,
        epoch: exported.epoch,
        format: format_to_wire(exported.format) as i32,
        total_bytes: exported.bytes.len() as u64,
        sha256: exported.sha256,
        tau: exported.tau,
    };
    let data = exported
        .bytes
        .chunks(cauda_proto::MAX_CHUNK_BYTES)
        .map(|c| v1::ExportChunk {
            part: Some(v1::export_chunk::Part::Data(c.to_vec())),
        });
    std::iter::once(v1::ExportChunk {
        part: Some(v1::export_chunk::Part::Meta(meta)),
    })
    .chain(data)
    .collect()
}

/// Serves one `ExportRun` call.
pub async fn export_run(
    daemon: Arc<Daemon>,
    req: v1::ExportRunRequest,
) -> Result<ExportStream, Status> {
    let format = format_from_wire(req.format())?;
    let choice = match (req.epoch, req.choice()) {
        (Some(e), _) => CheckpointChoice::Epoch(e),
        (None, v1::CheckpointChoice::Best) => CheckpointChoice::Best,
        (None, v1::CheckpointChoice::Latest | v1::CheckpointChoice::Unspecified) => {
            CheckpointChoice::Latest
        }
    };
    let id = RunId(req.run_id);
    let exported = tokio::task::spawn_blocking(move || daemon.export_run(id, choice, format))
        .await
        .map_err(|e| Status::internal(format!("export task: {e}")))??;
    let messages = chunks(exported).into_iter().map(Ok);
    Ok(Box::pin(tokio_stream::iter(messages)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_with_the_meta_and_split_at_one_mebibyte() {
        let bytes = vec![7u8; cauda_proto::MAX_CHUNK_BYTES + 10];
        let out = chunks(Exported {
            run: RunId(3),
            epoch: 2,
            format: ExportFormat::Burn,
            bytes,
            sha256: "ab".into(),
            tau: None,
        });
        assert_eq!(out.len(), 3);
        match &out[0].part {
            Some(v1::export_chunk::Part::Meta(m)) => {
                assert_eq!((m.run_id, m.epoch, m.total_bytes), (3, 2, 1_048_586));
                assert_eq!(m.format(), v1::ExportFormat::Burn);
            }
            other => panic!("first message is not the meta: {other:?}"),
        }
        let sizes: Vec<usize> = out[1..]
            .iter()
            .map(|c| match &c.part {
                Some(v1::export_chunk::Part::Data(d)) => d.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![cauda_proto::MAX_CHUNK_BYTES, 10]);
    }

    #[test]
    fn an_unspecified_format_is_refused() {
        let err = format_from_wire(v1::ExportFormat::Unspecified).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn a_model_that_cannot_be_rebuilt_is_a_failed_precondition() {
        let s: Status = ExportError::Rebuild {
            run: RunId(1),
            reason: "x".into(),
        }
        .into();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        let s: Status = ExportError::Core(crate::core::CoreError::RunNotFound(RunId(1))).into();
        assert_eq!(s.code(), tonic::Code::NotFound);
    }
}
