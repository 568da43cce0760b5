//! Command runs (docs/COMMAND_RUNS.md): a lab's own programs (an official PyTorch
//! implementation, a baseline script) scheduled, packed, retried, checkpointed and reported like
//! engine runs. The spec's `[command]` describes the program; the worker (`worker::command`)
//! runs it, reads its report lines and stores its checkpoint directory. Nothing here knows the
//! engine's training loop; the reports become the engine's epoch records so that `cauda report`
//! and `cauda plot` treat both alike.

pub mod ckdir;
pub mod placeholders;
pub mod protocol;
mod run;
mod spec;

pub use run::{
    COMMAND_ENGINE, CommandRun, CommandSection, DEFAULT_MAX_OUTPUT_MB, DEFAULT_REPORT_TIMEOUT_S,
};
pub use spec::{CommandPoint, expand, is_command_spec, shortcut_help};
