//! The built-in plugins: the survey's samplers, losses, re-balancing schedules, augmentations and
//! module improvements, each with its paper, doc line, the reference code's defaults and its own
//! factory (one file per family).

mod augment;
mod ensemble;
mod losses;
mod module;
mod rebalance;
mod representation;
mod samplers;

use super::params::ParamSpec;
use super::{Factory, PluginDecl, Registry, RegistryError};

/// A tiny positive lower bound for parameters that must be > 0.
const EPS: f64 = 1e-9;

/// Zhou et al.'s BBN, whose reversed sampler, bilateral classifier and loss are built in.
const BBN: &str = "Zhou et al., BBN: Bilateral-Branch Network with Cumulative Learning for Long-Tailed Visual Recognition, CVPR 2020";

/// Kang et al., whose samplers and decoupled methods several plugins follow.
const KANG: &str =
    "Kang et al., Decoupling Representation and Classifier for Long-Tailed Recognition, ICLR 2020";

/// Li et al.'s GCL, a loss and the classifier stage that trains with it again.
const GCL: &str =
    "Li et al., Long-Tailed Visual Recognition via Gaussian Clouded Logit Adjustment, CVPR 2022";

/// Zhang et al.'s DisAlign, a stage 2 and the re-weighting loss it trains with.
const DISALIGN: &str = "Zhang et al., Distribution Alignment: A Unified Framework for Long-tail Visual Recognition, CVPR 2021";

fn decl(
    name: &'static str,
    doc: &'static str,
    paper: &'static str,
    params: Vec<ParamSpec>,
) -> PluginDecl {
    PluginDecl::new(name, doc, paper, params)
}

/// Every built-in plugin, registered once.
pub fn builtin_registry() -> Registry {
    let mut r = Registry::default();
    // The table is fixed at compile time; a duplicate or undocumented entry is a defect that
    // the registry's tests catch, not a condition a running daemon can meet.
    let mut add = |d: PluginDecl, f: Factory| {
        if let Err(e) = r.register(d, f) {
            panic!("built-in plugin table: {e}");
        }
    };
    samplers::register(&mut add);
    losses::register(&mut add);
    rebalance::register(&mut add);
    augment::register(&mut add);
    module::register(&mut add);
    ensemble::register(&mut add);
    representation::register(&mut add);
    r
}

/// What each family file registers through.
type Add<'a> = dyn FnMut(PluginDecl, Factory) + 'a;

fn build_err(plugin: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::build(plugin, e)
}
