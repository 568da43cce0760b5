//! Re-weighting, re-margining and logit-adjustment losses: one factory per loss, each building
//! its loss from the run's per-class training counts.

use std::sync::Arc;

use super::super::params::ParamSpec as P;
use super::super::{BuildContext, Needs, Params, RegistryError};
use super::{Add, DISALIGN, EPS, Factory, GCL, build_err, decl};
use crate::losses::{self, Loss, LossError};

/// A loss constructor's result as a factory's.
pub(super) fn built<L: Loss + 'static>(
    p: &Params,
    made: Result<L, LossError>,
) -> Result<Arc<dyn Loss>, RegistryError> {
    match made {
        Ok(l) => Ok(Arc::new(l)),
        Err(e) => Err(build_err(&p.plugin, e)),
    }
}

pub(super) fn counts(ctx: &BuildContext) -> &[usize] {
    &ctx.class_counts
}

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
            "ce",
            "Softmax cross-entropy (the baseline).",
            "Zhang et al., Deep Long-Tailed Learning: A Survey, TPAMI 2023 (baseline)",
            vec![],
        ),
        Factory::Loss(|p, _| built(p, losses::CrossEntropy::new())),
    );
    add(
        decl(
            "weighted-ce",
            "Cross-entropy with w_c ~ 1/n_c (sum C).",
            "Survey Sec. 3.1.2 (class-sensitive learning)",
            vec![],
        ),
        Factory::Loss(|p, ctx| built(p, losses::WeightedCe::new(counts(ctx)))),
    );
    add(
        decl(
            "class-balanced",
            "w_c ~ (1-beta)/(1-beta^n_c) (sum C) over CE (gamma = 0) or focal (gamma > 0).",
            "Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019",
            vec![
                P::float("beta", 0.9999, 0.0, 0.999_999, "effective-number beta"),
                P::float("gamma", 0.0, 0.0, 10.0, "focal gamma; 0 = cross-entropy"),
            ],
        ),
        Factory::Loss(|p, ctx| {
            let gamma = p.get("gamma");
            let base = if gamma > 0.0 {
                losses::ClassBalancedBase::Focal { gamma }
            } else {
                losses::ClassBalancedBase::CrossEntropy
            };
            built(
                p,
                losses::ClassBalanced::new(counts(ctx), p.get("beta"), base),
            )
        }),
    );
    add(
        decl(
            "focal",
            "-(1-p_y)^gamma log p_y.",
            "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017",
            vec![P::float("gamma", 2.0, 0.0, 10.0, "focusing parameter")],
        ),
        Factory::Loss(|p, _| built(p, losses::Focal::new(p.get("gamma")))),
    );
    add(
        decl(
            "ldam",
            "CE(s (z - m_y e_y)), m_c ~ n_c^-1/4 with max m; needs a cosine classifier.",
            "Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019",
            vec![
                P::float("max_m", 0.5, EPS, 5.0, "largest margin"),
                P::float("s", 30.0, EPS, 100.0, "logit scale"),
            ],
        )
        .needing(Needs {
            cosine_head: true,
            ..Needs::default()
        }),
        Factory::Loss(|p, ctx| {
            built(
                p,
                losses::Ldam::new(counts(ctx), p.get("max_m"), p.get("s")),
            )
        }),
    );
    add(
        decl(
            "gcl",
            "Gaussian clouded logits: CE(s (cos - noise_mul |eps| a_c / max a - m e_y)), eps ~ N(0, 1/3) clamped to [-1, 1] per sample and class, a_c = log n_max - log n_c; gamma > 0 adds the focal factor (1 - p)^gamma of its stage 2; needs a cosine classifier.",
            GCL,
            vec![
                P::float("m", 0.0, 0.0, 1.0, "margin of the true class (stage 1: 0; stage 2: 0.1)"),
                P::float("s", 30.0, EPS, 100.0, "logit scale (stage 1: 30; stage 2: 20)"),
                P::float(
                    "noise_mul",
                    0.5,
                    0.0,
                    10.0,
                    "largest cloud, the rarest class' (0: no clouds)",
                ),
                P::float(
                    "gamma",
                    0.0,
                    0.0,
                    10.0,
                    "focal factor of the classifier stage (`train_cls`, 1 there); 0 = cross-entropy",
                ),
            ],
        )
        .needing(Needs {
            cosine_head: true,
            ..Needs::default()
        }),
        Factory::Loss(|p, ctx| {
            built(
                p,
                losses::Gcl::new(
                    counts(ctx),
                    p.get("m"),
                    p.get("s"),
                    p.get("noise_mul"),
                    p.get("gamma"),
                ),
            )
        }),
    );
    add(
        decl(
            "grw",
            "Generalized re-weighting: cross-entropy with w_c ~ (1 / r_c)^rho (sum C), r_c = n_c / N.",
            DISALIGN,
            vec![P::float(
                "rho",
                1.2,
                0.0,
                10.0,
                "power of the inverse frequency (ImageNet-LT config: 1.2; 1 = weighted-ce)",
            )],
        ),
        Factory::Loss(|p, ctx| {
            built(
                p,
                losses::GeneralizedReweight::new(counts(ctx), p.get("rho")),
            )
        }),
    );
    add(
        decl(
            "balanced-softmax",
            "Cross-entropy on z + log n_c.",
            "Ren et al., Balanced Meta-Softmax for Long-Tailed Visual Recognition, NeurIPS 2020",
            vec![],
        ),
        Factory::Loss(|p, ctx| built(p, losses::BalancedSoftmax::new(counts(ctx)))),
    );
    add(
        decl(
            "logit-adjusted",
            "Cross-entropy on z + tau log pi_c.",
            "Menon et al., Long-Tail Learning via Logit Adjustment, ICLR 2021",
            vec![P::float("tau", 1.0, 0.0, 10.0, "adjustment strength")],
        ),
        Factory::Loss(|p, ctx| built(p, losses::LogitAdjusted::new(counts(ctx), p.get("tau")))),
    );
    add(
        decl(
            "vs",
            "Vector scaling: CE(z / Delta + tau log pi), Delta_c = (n_max / n_c)^gamma (logit scaling and adjustment).",
            "Kini et al., Label-Imbalanced and Group-Sensitive Classification under Overparameterization, NeurIPS 2021",
            vec![
                P::float(
                    "gamma",
                    0.3,
                    0.0,
                    2.0,
                    "power of the multiplicative scaling",
                ),
                P::float("tau", 1.0, 0.0, 10.0, "strength of the additive adjustment"),
            ],
        ),
        Factory::Loss(|p, ctx| {
            built(
                p,
                losses::VectorScaling::new(counts(ctx), p.get("gamma"), p.get("tau")),
            )
        }),
    );
    add(
        decl(
            "lade",
            "CE(z + log pi) plus alpha x LADE's per-class Donsker-Varadhan regularizer over the batch (ReMINE lambda).",
            "Hong et al., Disentangling Label Distribution for Long-tailed Visual Recognition, CVPR 2021",
            vec![
                P::float("alpha", 0.1, 0.0, 10.0, "weight of the LADE regularizer"),
                P::float(
                    "lambda",
                    0.1,
                    0.0,
                    10.0,
                    "ReMINE regularization of the estimate",
                ),
            ],
        ),
        Factory::Loss(|p, ctx| {
            built(
                p,
                losses::Lade::new(counts(ctx), p.get("alpha"), p.get("lambda")),
            )
        }),
    );
    add(
        decl(
            "influence-balanced",
            "CE for start_fraction of the epochs, then w_y CE alpha / (||softmax(z) - e_y||_1 ||h||_1 + 1e-3), w ~ 1/n_c.",
            "Park et al., Influence-Balanced Loss for Imbalanced Visual Classification, ICCV 2021",
            vec![
                P::float(
                    "alpha",
                    1000.0,
                    EPS,
                    1e6,
                    "influence scale (the CIFAR script's 1000)",
                ),
                P::float(
                    "start_fraction",
                    0.5,
                    0.0,
                    1.0,
                    "fraction of the epochs trained with plain CE first (100/200 in the paper)",
                ),
            ],
        ),
        Factory::Loss(|p, ctx| {
            let start = (p.get("start_fraction") * ctx.epochs as f64).floor() as usize;
            built(
                p,
                losses::InfluenceBalanced::new(counts(ctx), p.get("alpha"), start),
            )
        }),
    );
    add(
        decl(
            "label-aware-smoothing",
            "(1 - e_y) CE + e_y mean_c(-log p_c), e_c from smooth_tail (rarest) to smooth_head (largest class) on a concave curve.",
            "Zhong et al., Improving Calibration for Long-Tailed Recognition (MiSLAS), CVPR 2021",
            vec![
                P::float(
                    "smooth_head",
                    0.3,
                    0.0,
                    0.99,
                    "smoothing of the largest class",
                ),
                P::float(
                    "smooth_tail",
                    0.0,
                    0.0,
                    0.99,
                    "smoothing of the smallest class",
                ),
            ],
        ),
        Factory::Loss(|p, ctx| {
            built(
                p,
                losses::LabelAwareSmoothing::new(
                    counts(ctx),
                    p.get("smooth_head"),
                    p.get("smooth_tail"),
                ),
            )
        }),
    );
}
