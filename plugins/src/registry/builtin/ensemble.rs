//! Ensemble learning (survey Sec. 3.3.4): several experts over one shared trunk, each with its
//! own last stages and classifier ([`crate::models::ExpertResNet`]), trained by a loss that sees
//! every expert's logits. The `experts` classifier builds the model; RIDE's and SADE's losses
//! declare how many experts they need, so a spec without them is refused when it resolves.
//! BBN's two branches are the smallest such ensemble: the `bilateral` classifier (the last
//! residual block per branch, one linear classifier over both) and the `bbn` loss, which mixes
//! the branches, each fed by its own sampler stream, with the cumulative learning adaptor.

use super::super::params::ParamSpec as P;
use super::super::{ClassifierDesign, Needs};
use super::losses::{built, counts};
use super::{Add, BBN, EPS, Factory, decl};
use crate::losses;
use crate::models::{BackboneKind, HeadKind};

const RIDE: &str = "Wang et al., Long-tailed Recognition by Routing Diverse Distribution-Aware Experts (RIDE), ICLR 2021";
const SADE: &str = "Zhang et al., Self-Supervised Aggregation of Diverse Experts for Test-Agnostic Long-Tailed Recognition (SADE), NeurIPS 2022";

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
            "experts",
            "Experts over a shared trunk: the CIFAR ResNet's last two stages (24 and 48 maps) and a cosine classifier s cos(f_e, w_e) per expert; the output is the experts' mean.",
            RIDE,
            vec![
                P::int(
                    "experts",
                    3.0,
                    2.0,
                    BackboneKind::MAX_EXPERTS as f64,
                    "number of experts",
                ),
                P::float("scale", 30.0, EPS, 1000.0, "logit scale s of each expert"),
            ],
        ),
        Factory::Classifier(|p| {
            Ok(ClassifierDesign {
                head: HeadKind::Cosine {
                    scale: p.get("scale") as f32,
                },
                experts: p.get("experts") as usize,
                contrast: None,
                bilateral: false,
            })
        }),
    );
    add(
        decl(
            "ride",
            "Sum over experts of LDAM (class-balanced from reweight_start) plus diversity_factor x KL from the ensemble's softmax.",
            RIDE,
            vec![
                P::float("max_m", 0.5, EPS, 5.0, "largest LDAM margin"),
                P::float("s", 30.0, EPS, 100.0, "logit scale of the margins (the experts' s)"),
                P::float(
                    "diversity_factor",
                    losses::Ride::DEFAULT_DIVERSITY,
                    -10.0,
                    10.0,
                    "weight of the KL to the ensemble (negative: diversify)",
                ),
                P::float("base_temperature", 1.0, EPS, 100.0, "diversity temperature T"),
                P::float(
                    "reweight_start",
                    0.8,
                    0.0,
                    1.0,
                    "fraction of the epochs after which CE is class-balanced and T per class (1: never)",
                ),
                P::float(
                    "reweight_factor",
                    losses::Ride::DEFAULT_REWEIGHT_FACTOR,
                    0.0,
                    0.999,
                    "how much the per-class temperature follows the prior",
                ),
                P::float("beta", 0.9999, 0.0, 0.999_999, "effective-number beta of the CE weights"),
            ],
        )
        .needing(Needs {
            experts: Some((2, BackboneKind::MAX_EXPERTS)),
            ..Needs::default()
        }),
        Factory::Loss(|p, ctx| {
            let start = p.get("reweight_start");
            let params = losses::RideParams {
                max_m: p.get("max_m"),
                s: p.get("s"),
                diversity_factor: p.get("diversity_factor"),
                base_temperature: p.get("base_temperature"),
                reweight_epoch: (start < 1.0)
                    .then(|| (start * ctx.epochs as f64).floor() as usize),
                reweight_factor: p.get("reweight_factor"),
                beta: p.get("beta"),
            };
            built(p, losses::Ride::new(counts(ctx), params))
        }),
    );
    add(
        decl(
            "sade",
            "Three experts: CE, balanced softmax (z + log pi) and inverse softmax (z + log pi - tau log pi~), summed.",
            SADE,
            vec![P::float(
                "tau",
                losses::Sade::DEFAULT_TAU,
                0.0,
                10.0,
                "strength of the third expert's inverse prior",
            )],
        )
        .needing(Needs {
            experts: Some((3, 3)),
            ..Needs::default()
        }),
        Factory::Loss(|p, ctx| built(p, losses::Sade::new(counts(ctx), p.get("tau")))),
    );
    add(
        decl(
            "bilateral",
            "BBN's bilateral-branch CIFAR ResNet: the last residual block once per branch (conventional: the main stream, re-balancing: the second stream), one linear classifier over both branches' features [f_c, f_r].",
            BBN,
            vec![],
        ),
        Factory::Classifier(|_| {
            Ok(ClassifierDesign {
                head: HeadKind::Linear,
                experts: 1,
                contrast: None,
                bilateral: true,
            })
        }),
    );
    add(
        decl(
            "bbn",
            "Cumulative learning: z = alpha z_c + (1 - alpha) z_r (the classifier on 2 [alpha f_c, (1 - alpha) f_r]), L = alpha CE(z, y_c) + (1 - alpha) CE(z, y_r), alpha = 1 - (T / T_max)^2 over epochs; alpha = 1/2 at test.",
            BBN,
            vec![],
        )
        .needing(Needs {
            second_stream: true,
            bilateral: true,
            ..Needs::default()
        }),
        Factory::Loss(|_, ctx| Ok(std::sync::Arc::new(losses::Bbn::new(ctx.epochs)))),
    );
}
