//! Carries a rejected spec's key and reason inside an INVALID_ARGUMENT status (as an encoded
//! `SpecError` in the status details), so clients can name the key without parsing messages and
//! the daemon builds the status the same way everywhere.

use prost::Message;
use prost::bytes::Bytes;
use tonic::{Code, Status};

use crate::v1::SpecError;

/// Builds the INVALID_ARGUMENT status of a rejected spec: the message reads
/// `` key `train.lr`: must be positive (line 7) `` and the details hold `err` encoded.
pub fn spec_error_status(err: &SpecError) -> Status {
    Status::with_details(
        Code::InvalidArgument,
        describe(err),
        Bytes::from(err.encode_to_vec()),
    )
}

/// The `SpecError` inside a status built by [`spec_error_status`]; `None` for any other status
/// (another code, no details, or details that do not decode).
pub fn spec_error_from_status(status: &Status) -> Option<SpecError> {
    if status.code() != Code::InvalidArgument || status.details().is_empty() {
        return None;
    }
    SpecError::decode(status.details()).ok()
}

/// The one-line human form of a spec error.
fn describe(err: &SpecError) -> String {
    let mut text = if err.key.is_empty() {
        err.reason.clone()
    } else {
        format!("key `{}`: {}", err.key, err.reason)
    };
    if let Some(line) = err.line {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_the_spec_error() {
        let err = SpecError {
            key: "train.lr".into(),
            reason: "must be positive, got -0.1".into(),
            line: Some(7),
        };
        let status = spec_error_status(&err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "key `train.lr`: must be positive, got -0.1 (line 7)"
        );
        assert_eq!(spec_error_from_status(&status), Some(err));
    }

    #[test]
    fn other_statuses_carry_no_spec_error() {
        assert_eq!(spec_error_from_status(&Status::not_found("run r-3")), None);
        let garbage = Status::with_details(Code::InvalidArgument, "x", Bytes::from_static(&[0xff]));
        assert_eq!(spec_error_from_status(&garbage), None);
    }

    #[test]
    fn a_keyless_error_reads_as_its_reason() {
        let err = SpecError {
            key: String::new(),
            reason: "expected `=` after a key".into(),
            line: None,
        };
        assert_eq!(
            spec_error_status(&err).message(),
            "expected `=` after a key"
        );
    }
}
