//! Batch-level information augmentation plugins: one factory per mixer. CMO pastes from the
//! stage's second sampler stream, which it declares (`Needs::second_stream`).

use std::sync::Arc;

use super::super::Needs;
use super::super::params::ParamSpec as P;
use super::{Add, EPS, Factory, decl};
use crate::augment::{Cmo, Mixer};

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
    add(
        decl(
            "cmo",
            "Minority-oversampled CutMix: with probability prob, each image gets a box of the second stream's image beside it (rebalance.second_sampler; CMO's is class-balanced), label weight = kept area, lam ~ Beta(alpha, alpha); only in epochs start_data_aug < t < T - end_data_aug.",
            "Park et al., The Majority Can Help the Minority: Context-rich Minority Oversampling for Long-tailed Classification (CMO), CVPR 2022",
            vec![
                P::float("prob", 0.5, 0.0, 1.0, "probability that a batch is mixed (mixup_prob)"),
                P::float("alpha", 1.0, EPS, 10.0, "Beta parameter (beta)"),
                P::int(
                    "start_data_aug",
                    3.0,
                    0.0,
                    100_000.0,
                    "batches are mixed from epoch start_data_aug + 1 (0-based)",
                ),
                P::int(
                    "end_data_aug",
                    3.0,
                    0.0,
                    100_000.0,
                    "nor in the last end_data_aug epochs",
                ),
            ],
        )
        .needing(Needs {
            second_stream: true,
            ..Needs::default()
        }),
        Factory::Mixer(|p, _| {
            Ok(Arc::new(Cmo {
                prob: p.get("prob"),
                alpha: p.get("alpha"),
                start: p.get("start_data_aug") as usize,
                end: p.get("end_data_aug") as usize,
            }))
        }),
    );
}
