//! Batch-level information augmentation plugins: one factory per mixer.

use std::sync::Arc;

use super::super::params::ParamSpec as P;
use super::{Add, EPS, Factory, decl};
use crate::augment::Mixer;

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
            "mixup",
            "x = lam x_i + (1-lam) x_j, same lam for the labels; lam ~ Beta(alpha, alpha).",
            "Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018",
            vec![P::float("alpha", 1.0, EPS, 10.0, "Beta parameter")],
        ),
        Factory::Mixer(|p, _| {
            Ok(Arc::new(Mixer::Mixup {
                alpha: p.get("alpha"),
            }))
        }),
    );
    add(
        decl(
            "cutmix",
            "Paste a box of x_j into x_i; label weight = kept area.",
            "Yun et al., CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features, ICCV 2019",
            vec![P::float("alpha", 1.0, EPS, 10.0, "Beta parameter")],
        ),
        Factory::Mixer(|p, _| {
            Ok(Arc::new(Mixer::CutMix {
                alpha: p.get("alpha"),
            }))
        }),
    );
    add(
        decl(
            "remix",
            "Mixup whose label weight goes to the minority class when n_i/n_j >= kappa and lam < tau.",
            "Chou et al., Remix: Rebalanced Mixup, ECCV Workshops 2020",
            vec![
                P::float("alpha", 1.0, EPS, 10.0, "Beta parameter"),
                P::float("kappa", 3.0, 1.0, 1000.0, "imbalance ratio threshold"),
                P::float("tau", 0.5, 0.0, 1.0, "mixing threshold"),
            ],
        ),
        Factory::Mixer(|p, _| {
            Ok(Arc::new(Mixer::Remix {
                alpha: p.get("alpha"),
                kappa: p.get("kappa"),
                tau: p.get("tau"),
            }))
        }),
    );
}
