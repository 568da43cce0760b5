//! The engine's fingerprint: which training code a result came from. It is part of every run's
//! identity (`ResolvedRun::engine`, hashed by `config_hash`), so a daemon never reuses a result
//! that other engine code trained, and it is stored beside every run so reports can tell rows of
//! older engines apart.
//!
//! **Bump [`RECIPE_VERSION`] in the same commit as any change to what training computes** (loss,
//! sampler, schedule, augmentation, batching, evaluation, the stages), even when no config key
//! changes: the bump is what stops the daemon from reusing results of the old behaviour. A pure
//! refactor, a speed-up with bit-identical results, or a change to reporting only needs none.
//!
//! Changelog of `RECIPE_VERSION`:
//! - 1: everything before fingerprints (runs stored without one count as older than any).
//! - 2: fingerprints introduced; training unchanged from 1.
//! - 3: what the lockstep check found: BatchNorm's running variance unbiased (PyTorch's), the
//!   augmentation RNG on its own stream (not epoch 0's sampler stream); cRT/LWS stage 2 with
//!   Kang et al.'s class-aware sampler; weight balancing as its authors' code (stage-1 and
//!   stage-2 weight decay apart, MaxNorm only in stage 2 with a relative radius, lr 0.01).
//! - 4: split-file data sets (`list`, `inat`) stream from disk through torchvision's transforms
//!   (Pillow's bilinear resize, RandomResizedCrop + flip for crop_flip, optional ColorJitter)
//!   instead of pad-and-crop on in-memory 224 squares resized by another filter; a run with
//!   `resources.gpus >= 2` trains data-parallel (per-shard BatchNorm) instead of on one device;
//!   every run draws its initial weights right after seeding, in the module's order (Burn's
//!   initializers are lazy, so they used to be drawn in the order the first forward pass read
//!   them): the same seed gives other initial weights than in 3, from the same distributions.

/// The version of the training recipe's semantics; see the module doc for when to bump it.
pub const RECIPE_VERSION: u32 = 4;
// 1 names the engine before fingerprints; it can never be current again.
const _: () = assert!(RECIPE_VERSION >= 2);

/// This engine's fingerprint, e.g. `cauda-plugins 0.1.0 recipe 2`: the crate's name and version
/// and [`RECIPE_VERSION`].
pub fn engine_fingerprint() -> String {
    format!(
        "{} {} recipe {RECIPE_VERSION}",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_crate_version_and_recipe() {
        let fingerprint = engine_fingerprint();
        assert_eq!(
            fingerprint,
            format!(
                "cauda-plugins {} recipe {RECIPE_VERSION}",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}
