//! cauda's long-tailed training engine: data sets and long-tailed splits, models, the plugin
//! registry of the survey's methods (re-balancing, augmentation, module improvement), and the
//! training loop that the daemon's workers run. It knows nothing about gRPC.

pub mod augment;
pub mod data;
pub mod export;
pub mod hex;
pub mod losses;
pub mod metrics;
pub mod models;
pub mod registry;
pub mod samplers;
pub mod spec;
pub mod stage2;
pub mod train;
