//! TLS (rustls with ring) for the daemon's one listening port and for its own workers' calls
//! back to it. `[tls]` names PEM files; they are read and checked when the daemon starts, so a
//! missing file or a key that does not fit the certificate stops `caudad serve` with the path
//! and the reason instead of failing every handshake later. Workers learn what to trust from
//! the environment the executor gives them (`CAUDA_CA_CERT`, `CAUDA_TLS_SERVER_NAME`).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::TlsConfig;

/// The environment variable naming the CA certificate (PEM) a worker verifies the daemon with.
pub const CA_ENV: &str = "CAUDA_CA_CERT";

/// The environment variable naming the host a worker checks the daemon's certificate against.
pub const SERVER_NAME_ENV: &str = "CAUDA_TLS_SERVER_NAME";

/// Largest PEM file read (certificate chains are a few KB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why TLS could not be set up; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tls: {} is {len} bytes; a PEM file is at most {MAX_PEM_BYTES}", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error("tls: {} holds no PEM `{what}` block", path.display())]
    NoPem { path: PathBuf, what: &'static str },
    #[error("tls: the certificate {} and key {} are unusable: {reason}", cert.display(), key.display())]
    Invalid {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The server side of `[tls]`: the certificate chain and key, read and checked now.
pub fn server_config(config: &TlsConfig) -> Result<ServerTlsConfig, TlsError> {
    let cert = read_pem(&config.cert, "CERTIFICATE")?;
    let key = read_pem(&config.key, "PRIVATE KEY")?;
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    // Building the acceptor parses both files and checks that the key fits the certificate.
    tonic::transport::Server::builder()
        .tls_config(tls.clone())
        .map_err(|e| TlsError::Invalid {
            cert: config.cert.clone(),
            key: config.key.clone(),
            reason: error_chain(&e),
        })?;
    Ok(tls)
}

/// The client side for a worker dialing an `https://` daemon: trust `ca` (else the system's
/// roots) and check the certificate against `server_name` (else the dialed host).
pub fn client_config(
    ca: Option<&Path>,
    server_name: Option<&str>,
) -> Result<ClientTlsConfig, TlsError> {
    let mut tls = ClientTlsConfig::new();
    tls = match ca {
        Some(path) => tls.ca_certificate(Certificate::from_pem(read_pem(path, "CERTIFICATE")?)),
        None => tls.with_native_roots(),
    };
    if let Some(name) = server_name {
        tls = tls.domain_name(name);
    }
    Ok(tls)
}

/// The environment the executor gives workers of a TLS daemon: the CA path (absolute, so a
/// worker's working directory does not matter) and the server name, when configured.
pub fn worker_env(config: &TlsConfig) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(ca) = &config.ca {
        let ca = std::path::absolute(ca).unwrap_or_else(|_| ca.clone());
        env.push((CA_ENV.to_string(), ca.display().to_string()));
    }
    if let Some(name) = &config.server_name {
        env.push((SERVER_NAME_ENV.to_string(), name.clone()));
    }
    env
}

/// A PEM file's bytes, bounded, with at least one `-----BEGIN ...{what}-----` block.
fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{what}-----")));
    if !has_block {
        return Err(TlsError::NoPem {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(bytes)
}

/// An error and its sources on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn missing_or_non_pem_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TlsConfig {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("key.pem"),
            ca: None,
            server_name: None,
        };
        let err = server_config(&config).unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let config = TlsConfig {
            cert: write(dir.path(), "cert.pem", "not pem"),
            ..config
        };
        let err = server_config(&config).unwrap_err().to_string();
        assert!(
            err.contains("cert.pem") && err.contains("CERTIFICATE"),
            "{err}"
        );
        let config = TlsConfig {
            cert: write(
                dir.path(),
                "cert.pem",
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            key: write(
                dir.path(),
                "key.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            ..config
        };
        let err = server_config(&config).unwrap_err().to_string();
        assert!(err.contains("unusable"), "{err}");
        let err = client_config(Some(&dir.path().join("ca.pem")), None).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn workers_get_an_absolute_ca_path_and_the_server_name() {
        let env = worker_env(&TlsConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            ca: Some("ca.pem".into()),
            server_name: Some("localhost".into()),
        });
        assert_eq!(env.len(), 2);
        assert_eq!(env[0].0, CA_ENV);
        assert!(Path::new(&env[0].1).is_absolute() && env[0].1.ends_with("ca.pem"));
        assert_eq!(env[1], (SERVER_NAME_ENV.into(), "localhost".into()));
    }
}
