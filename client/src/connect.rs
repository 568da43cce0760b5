//! Opening the connection to `caudad`: one place that turns a refused or malformed address
//! into the single line `cannot reach the daemon at ADDR: reason` (exit code 3), and that sends
//! `CAUDA_TOKEN` (when set) as `authorization: Bearer <token>` with every call.

use std::error::Error as _;
use std::time::Duration;

use cauda_proto::v1::cauda_client::CaudaClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::exit::CliError;

/// How long to wait for the TCP and HTTP/2 handshake before calling the daemon unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest reply the client decodes (256 MiB).
pub const MAX_REPLY_BYTES: usize = 256 << 20;

/// The environment variable holding the user's bearer token.
pub const TOKEN_ENV: &str = "CAUDA_TOKEN";

/// A client of the daemon whose calls carry the user's token.
pub type Client = CaudaClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to each call (nothing without a token).
#[derive(Debug, Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    /// The token of `CAUDA_TOKEN`, if set and not empty.
    fn from_env() -> Result<Self, CliError> {
        match std::env::var(TOKEN_ENV) {
            Ok(token) if !token.trim().is_empty() => format!("Bearer {}", token.trim())
                .parse()
                .map(|v| Self(Some(v)))
                .map_err(|_| CliError::Usage(format!("{TOKEN_ENV}: not printable ASCII"))),
            _ => Ok(Self(None)),
        }
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connected client of the daemon at `addr` (e.g. `http://127.0.0.1:50051`).
pub async fn connect(addr: &str) -> Result<Client, CliError> {
    let bearer = Bearer::from_env()?;
    let unreachable = |reason: String| CliError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let endpoint = Endpoint::from_shared(addr.to_string())
        .map_err(|e| unreachable(chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(chain(&e)))?;
    // A long run's metrics (one record per epoch, with per-class accuracies) outgrow tonic's
    // 4 MiB default reply limit: GetMetrics of ~2,700 epochs of 100 classes is ~6 MB.
    Ok(CaudaClient::with_interceptor(channel, bearer).max_decoding_message_size(MAX_REPLY_BYTES))
}

/// An error and its sources on one line, without repeating a source its parent already
/// quotes.
fn chain(err: &tonic::transport::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last().is_none_or(|p| !p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    crate::exit::one_line(&parts.join(": "))
}

/// Fetches one run (GetRun), mapping a missing run in the reply to a bad-reply error.
pub async fn fetch_run(
    client: &mut Client,
    addr: &str,
    run_id: u64,
) -> Result<cauda_proto::v1::Run, CliError> {
    client
        .get_run(cauda_proto::v1::GetRunRequest { run_id })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner()
        .run
        .ok_or_else(|| CliError::BadReply("GetRun returned no run".into()))
}
