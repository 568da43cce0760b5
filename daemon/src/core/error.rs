//! The core's typed errors: one enum every adapter maps exhaustively (gRPC in `grpc::convert`).

use cauda_plugins::spec::SpecError;

use crate::model::{ExperimentId, RunId, RunState};
use crate::store::StoreError;

/// The core's result type.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// What can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The spec was rejected; nothing was stored. `key` is a dotted path (empty for a syntax
    /// error), `line` the 1-based line when known.
    #[error("invalid spec: {key}: {reason}")]
    InvalidSpec {
        key: String,
        reason: String,
        line: Option<u32>,
    },
    #[error("run {0} not found")]
    RunNotFound(RunId),
    #[error("experiment {0} not found")]
    ExperimentNotFound(ExperimentId),
    #[error("run {run} has no checkpoint matching the request")]
    CheckpointNotFound { run: RunId },
    /// A worker call for an attempt that is not its run's current running attempt (a worker
    /// left over from before a restart, a retry or a cancel): the worker must stop.
    #[error(
        "run {run}: attempt {attempt} is not current (the run is {state:?} at attempt {current})"
    )]
    StaleAttempt {
        run: RunId,
        attempt: u32,
        current: u32,
        state: RunState,
    },
    /// A worker report that cannot be stored as sent.
    #[error("run {run}: bad report: {reason}")]
    BadReport { run: RunId, reason: String },
    /// An upload whose bytes do not match what was announced; nothing was stored.
    #[error("run {run}: corrupt upload: {reason}")]
    CorruptUpload { run: RunId, reason: String },
    /// The caller is neither the run's owner nor an admin.
    #[error("run {run} belongs to {owner}; {actor} may not change it")]
    NotOwner {
        run: RunId,
        owner: String,
        actor: String,
    },
    /// The caller is neither the experiment's owner nor an admin.
    #[error("experiment {experiment} belongs to {owner}; {actor} may not change it")]
    ExperimentNotOwned {
        experiment: ExperimentId,
        owner: String,
        actor: String,
    },
    /// A deletion the rules forbid (an unfinished run, one others need); nothing was deleted.
    #[error("run {run} cannot be deleted: {reason}")]
    NotDeletable { run: RunId, reason: String },
    /// A per-user limit would be passed; nothing was stored.
    /// The user may not do this here (a daemon setting, not ownership).
    #[error("user {user} {reason}")]
    Forbidden { user: String, reason: String },
    #[error("user {user} is at a quota: {reason}")]
    QuotaExceeded { user: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A broken invariant of the daemon itself (a poisoned lock).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<SpecError> for CoreError {
    fn from(err: SpecError) -> Self {
        match err {
            SpecError::Parse { message, .. } => {
                let line = line_of(&message);
                CoreError::InvalidSpec {
                    key: String::new(),
                    reason: message,
                    line,
                }
            }
            SpecError::Invalid { key, message, .. } => CoreError::InvalidSpec {
                line: line_of(&message),
                key,
                reason: message,
            },
            SpecError::TooLarge { size, limit, .. } => CoreError::InvalidSpec {
                key: String::new(),
                reason: format!("spec is {size} bytes; the limit is {limit}"),
                line: None,
            },
        }
    }
}

/// The line of a message that starts `line N: ...` (the spec parser's form).
fn line_of(message: &str) -> Option<u32> {
    let rest = message.strip_prefix("line ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_keep_key_and_line() {
        let err: CoreError = SpecError::Invalid {
            origin: "x".into(),
            key: "train.lr".into(),
            message: "must be positive".into(),
        }
        .into();
        assert!(
            matches!(err, CoreError::InvalidSpec { ref key, line: None, .. } if key == "train.lr")
        );
        let err: CoreError = SpecError::Parse {
            origin: "x".into(),
            message: "line 7: expected `=`".into(),
        }
        .into();
        assert!(matches!(err, CoreError::InvalidSpec { line: Some(7), .. }));
    }
}
