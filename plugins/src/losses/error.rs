//! Typed errors for building and applying the long-tailed losses, so the plugin registry can tell the
//! user which parameter is wrong and what range is allowed.

use thiserror::Error;

/// Errors raised when a loss is constructed with bad parameters or applied to mismatched tensors.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LossError {
    /// A numeric parameter is outside its allowed range (or not finite).
    #[error("{loss}: parameter `{param}` = {value} is out of range; allowed: {allowed}")]
    InvalidParameter {
        /// The loss being built, e.g. `focal`.
        loss: &'static str,
        /// The parameter name, e.g. `gamma`.
        param: &'static str,
        /// The rejected value.
        value: f64,
        /// The allowed range in words, e.g. `0 <= beta < 1`.
        allowed: &'static str,
    },
    /// The per-class training counts are empty.
    #[error("{loss}: class counts `n_c` are empty; need one count per class")]
    EmptyCounts {
        /// The loss being built.
        loss: &'static str,
    },
    /// A class has no training samples; its prior, margin or weight would be undefined.
    #[error("{loss}: class counts `n_c` must all be > 0, but class {class} has 0 samples")]
    ZeroCount {
        /// The loss being built.
        loss: &'static str,
        /// The first class with a zero count.
        class: usize,
    },
    /// A per-class vector (counts, weights, prior) does not match the number of logit columns.
    #[error("{what} has {got} classes but the logits have {expected} columns")]
    ClassMismatch {
        /// What was mismatched, e.g. `class weights`.
        what: &'static str,
        /// Number of logit columns C.
        expected: usize,
        /// Length of the per-class vector.
        got: usize,
    },
    /// A per-sample tensor does not match the batch size of the logits.
    #[error("{what} has {got} entries but the batch has {expected} samples")]
    BatchMismatch {
        /// What was mismatched, e.g. `labels_b`.
        what: &'static str,
        /// Batch size N of the logits.
        expected: usize,
        /// Length of the per-sample tensor.
        got: usize,
    },
    /// The loss cannot take this kind of batch (e.g. mixed labels for a per-class estimate).
    #[error("{loss}: {message}")]
    Unsupported {
        /// The loss.
        loss: &'static str,
        /// What it cannot take and what to do instead.
        message: &'static str,
    },
}

/// Result alias for the losses module.
pub type Result<T> = std::result::Result<T, LossError>;
