//! Opening the connection to `caudad`: one place that turns a refused or malformed address
//! into the single line `cannot reach the daemon at ADDR: reason` (exit code 3), and that sends
//! `CAUDA_TOKEN` (when set; else the token `cauda login` stored for the address) as
//! `authorization: Bearer <token>` with every call. An `https://` address is verified with
//! `--ca-cert` / `CAUDA_CA_CERT` when given, else the system's root certificates.

use std::error::Error as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cauda_proto::Bearer;
use cauda_proto::v1::cauda_client::CaudaClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::exit::CliError;

/// How long to wait for the TCP and HTTP/2 handshake before calling the daemon unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest reply the client decodes (256 MiB).
pub const MAX_REPLY_BYTES: usize = 256 << 20;

/// The environment variable holding the user's bearer token.
pub const TOKEN_ENV: &str = "CAUDA_TOKEN";

/// The environment variable naming the CA certificate (PEM) an `https://` daemon is checked with.
pub const CA_CERT_ENV: &str = "CAUDA_CA_CERT";

/// The `--ca-cert` of this invocation (set once by `cmd::run`).
static CA_CERT: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Remembers `--ca-cert` / `CAUDA_CA_CERT` for every connection this process opens.
pub fn set_ca_cert(path: Option<PathBuf>) {
    let _ = CA_CERT.set(path);
}

/// A client of the daemon whose calls carry the user's token.
pub type Client = CaudaClient<InterceptedService<Channel, Bearer>>;

/// The calls' bearer for `token` (trimmed; none when empty); `source` names where the token came
/// from in the error.
pub fn bearer(token: Option<&str>, source: &str) -> Result<Bearer, CliError> {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Bearer::new(token).map_err(|e| CliError::Usage(format!("{source}: {e}"))),
        None => Ok(Bearer::none()),
    }
}

/// The bearer of `CAUDA_TOKEN` if set and not empty, else of the token stored for `addr`.
fn resolve_bearer(addr: &str) -> Result<Bearer, CliError> {
    match token_source(addr)? {
        Some((token, source)) => bearer(Some(&token), &source),
        None => Ok(Bearer::none()),
    }
}

/// The token calls to `addr` carry and where it comes from (`CAUDA_TOKEN` or the credentials
/// file), if any.
pub fn token_source(addr: &str) -> Result<Option<(String, String)>, CliError> {
    if let Ok(token) = std::env::var(TOKEN_ENV)
        && !token.trim().is_empty()
    {
        return Ok(Some((token, format!("${TOKEN_ENV}"))));
    }
    let stored = crate::credentials::token_for(addr)?;
    Ok(stored.map(|t| {
        let path = crate::credentials::path().unwrap_or_default();
        (t, path.display().to_string())
    }))
}

/// A connected client of the daemon at `addr` (e.g. `http://127.0.0.1:50051`).
pub async fn connect(addr: &str) -> Result<Client, CliError> {
    connect_with(addr, resolve_bearer(addr)?).await
}

/// A connected client of the daemon at `addr` whose calls carry `bearer`.
pub async fn connect_with(addr: &str, bearer: Bearer) -> Result<Client, CliError> {
    let unreachable = |reason: String| CliError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(addr.to_string())
        .map_err(|e| unreachable(chain(&e)))?
        .connect_timeout(CONNECT_TIMEOUT);
    if addr.starts_with("https://") {
        endpoint = endpoint
            .tls_config(client_tls()?)
            .map_err(|e| unreachable(chain(&e)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| unreachable(explain_tls(chain(&e))))?;
    // A long run's metrics (one record per epoch, with per-class accuracies) outgrow tonic's
    // 4 MiB default reply limit: GetMetrics of ~2,700 epochs of 100 classes is ~6 MB.
    Ok(CaudaClient::with_interceptor(channel, bearer).max_decoding_message_size(MAX_REPLY_BYTES))
}

/// What an `https://` daemon is verified with: the `--ca-cert` alone when given (a private
/// CA), else the system's root certificates.
fn client_tls() -> Result<ClientTlsConfig, CliError> {
    let Some(Some(path)) = CA_CERT.get() else {
        return Ok(ClientTlsConfig::new().with_native_roots());
    };
    let bytes = std::fs::read(path).map_err(|source| CliError::Io {
        path: path.clone(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN CERTIFICATE-----") {
        return Err(CliError::Usage(format!(
            "{}: not a PEM certificate (--ca-cert / {CA_CERT_ENV} takes the CA's PEM file)",
            path.display()
        )));
    }
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(bytes)))
}

/// A connection error with a hint when the TLS handshake is what failed.
fn explain_tls(reason: String) -> String {
    if reason.contains("invalid peer certificate") {
        format!(
            "{reason} (the daemon's TLS certificate was not verified: pass the CA that signed it \
             with --ca-cert or {CA_CERT_ENV}, and use a host name the certificate names)"
        )
    } else if reason.contains("no native root CA certificates found")
        || reason.contains("no native certs found")
    {
        format!("{reason} (no system root certificates: pass the daemon's CA with --ca-cert)")
    } else {
        reason
    }
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
