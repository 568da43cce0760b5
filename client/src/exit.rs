//! What `cauda` exits with, and why: one error type for every command and one exhaustive
//! mapping from a gRPC status code to an exit code, so a script can tell "the daemon is down"
//! from "the spec is wrong" from "a run failed" without parsing messages.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | runs failed or were cancelled (`submit --wait`, `watch`) |
//! | 2 | bad usage or input (arguments, a file that cannot be read, an output that cannot be written) |
//! | 3 | the daemon cannot be reached (connection refused, shutting down) |
//! | 4 | not found (unknown run, experiment or checkpoint) |
//! | 5 | the spec was rejected (INVALID_ARGUMENT; the key and line are printed) |
//! | 6 | any other server error, or a broken reply (e.g. a checkpoint whose digest does not match) |

use std::path::PathBuf;

use cauda_proto::spec_error_from_status;
use tonic::{Code, Status};

/// Exit code: success.
pub const OK: u8 = 0;
/// Exit code: runs failed or were cancelled.
pub const RUNS_FAILED: u8 = 1;
/// Exit code: bad usage or input.
pub const USAGE: u8 = 2;
/// Exit code: the daemon cannot be reached.
pub const UNREACHABLE: u8 = 3;
/// Exit code: an unknown run, experiment or checkpoint.
pub const NOT_FOUND: u8 = 4;
/// Exit code: the daemon rejected the spec.
pub const REJECTED: u8 = 5;
/// Exit code: any other server error.
pub const SERVER: u8 = 6;

/// The exit-code table, as printed at the end of `cauda --help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  runs failed or were cancelled (submit --wait, watch)
  2  bad usage or input
  3  the daemon cannot be reached
  4  not found (unknown run, experiment or checkpoint)
  5  the spec was rejected (the key and line are printed)
  6  any other server error";

/// The exit code of a failed call with this status code. Exhaustive on purpose: a new code in
/// tonic must be placed here by a person.
pub fn exit_code_for(code: Code) -> u8 {
    match code {
        Code::Ok => OK,
        Code::NotFound => NOT_FOUND,
        Code::InvalidArgument => REJECTED,
        Code::Unavailable => UNREACHABLE,
        Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated => SERVER,
    }
}

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument that clap accepted but the command cannot use.
    #[error("{0}")]
    Usage(String),
    /// A local file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No connection to the daemon.
    #[error("cannot reach the daemon at {addr}: {reason}")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// The transport's reason, on one line.
        reason: String,
    },
    /// The daemon answered with an error status.
    #[error("{}", describe_status(.0))]
    Rpc(Status),
    /// The daemon's reply breaks the protocol (e.g. a checkpoint digest mismatch).
    #[error("{0}")]
    BadReply(String),
    /// Some runs ended FAILED or CANCELLED.
    #[error("{0}")]
    RunsFailed(String),
}

impl CliError {
    /// The process exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Io { .. } => USAGE,
            CliError::Unreachable { .. } => UNREACHABLE,
            CliError::Rpc(status) => exit_code_for(status.code()),
            CliError::BadReply(_) => SERVER,
            CliError::RunsFailed(_) => RUNS_FAILED,
        }
    }

    /// Turns a failed call into an error; an UNAVAILABLE status becomes [`CliError::Unreachable`]
    /// so it prints the same one line as a refused connection.
    pub fn from_status(addr: &str, status: Status) -> CliError {
        if status.code() == Code::Unavailable {
            return CliError::Unreachable {
                addr: addr.to_string(),
                reason: one_line(status.message()),
            };
        }
        // A status with a source was made on this side from a broken connection (a daemon's
        // statuses carry none): e.g. plaintext HTTP/2 sent to a TLS port, which drops it (seen
        // as Cancelled or Unknown, or as Internal "h2 protocol error", depending on timing).
        if matches!(
            status.code(),
            Code::Cancelled | Code::Unknown | Code::Internal
        ) && std::error::Error::source(&status).is_some()
        {
            let hint = if addr.starts_with("http://") {
                " (if the daemon serves TLS, use an https:// address)"
            } else {
                ""
            };
            return CliError::Unreachable {
                addr: addr.to_string(),
                reason: format!("the connection broke: {}{hint}", one_line(status.message())),
            };
        }
        CliError::Rpc(status)
    }
}

/// The one-line text of an error status; a rejected spec names its key and line.
fn describe_status(status: &Status) -> String {
    if let Some(err) = spec_error_from_status(status) {
        let mut text = String::from("spec rejected: ");
        if !err.key.is_empty() {
            text.push_str(&format!("key `{}`: ", err.key));
        }
        text.push_str(&err.reason);
        if let Some(line) = err.line {
            text.push_str(&format!(" (line {line})"));
        }
        return text;
    }
    let what = match status.code() {
        Code::NotFound => "not found",
        Code::InvalidArgument => "rejected",
        _ => "daemon error",
    };
    format!("{what}: {}", one_line(status.message()))
}

/// Joins the lines of a message so an error always prints on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use cauda_proto::{spec_error_status, v1::SpecError};

    #[test]
    fn status_codes_map_to_documented_exit_codes() {
        assert_eq!(exit_code_for(Code::Ok), 0);
        assert_eq!(exit_code_for(Code::Unavailable), 3);
        assert_eq!(exit_code_for(Code::NotFound), 4);
        assert_eq!(exit_code_for(Code::InvalidArgument), 5);
        for code in [
            Code::Internal,
            Code::Unknown,
            Code::ResourceExhausted,
            Code::DataLoss,
        ] {
            assert_eq!(exit_code_for(code), 6, "{code:?}");
        }
    }

    #[test]
    fn a_rejected_spec_prints_its_key_and_line() {
        let status = spec_error_status(&SpecError {
            key: "train.lr".into(),
            reason: "must be positive, got -0.1".into(),
            line: Some(7),
        });
        let err = CliError::from_status("http://x:1", status);
        assert_eq!(err.exit_code(), 5);
        assert_eq!(
            err.to_string(),
            "spec rejected: key `train.lr`: must be positive, got -0.1 (line 7)"
        );
    }

    #[test]
    fn unavailable_reads_as_unreachable() {
        let err = CliError::from_status("http://h:9", Status::unavailable("shutting\ndown"));
        assert_eq!(err.exit_code(), 3);
        assert_eq!(
            err.to_string(),
            "cannot reach the daemon at http://h:9: shutting down"
        );
    }

    #[test]
    fn not_found_exits_4() {
        let err = CliError::from_status("a", Status::not_found("run r-9"));
        assert_eq!(err.exit_code(), 4);
        assert_eq!(err.to_string(), "not found: run r-9");
    }
}
