//! Representation learning (survey Sec. 3.3.1): a loss that shapes the feature space itself,
//! here contrastively over augmented views. The `contrastive` classifier adds the projection
//! head, the class-center head and the views to the model ([`crate::models::ContrastHeads`]);
//! BCL's loss declares that it needs them, so a spec without them is refused when it resolves.

use super::super::params::ParamSpec as P;
use super::super::{ClassifierDesign, Needs};
use super::losses::{built, counts};
use super::{Add, EPS, Factory, decl};
use crate::losses::{self, BclParams};
use crate::models::{ContrastDesign, HeadKind};

const BCL: &str =
    "Zhu et al., Balanced Contrastive Learning for Long-Tailed Visual Recognition (BCL), CVPR 2022";

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
            "contrastive",
            "A cosine classifier s cos(f, w_c) plus, for training, a projection head Linear-BN-ReLU-Linear to dim on the features of `views` augmented views of each image (unit-norm embeddings) and a head of the same shape mapping each class's weight to a unit-norm center.",
            BCL,
            vec![
                P::int("dim", 128.0, 1.0, 4096.0, "width of the embeddings"),
                P::int(
                    "views",
                    2.0,
                    1.0,
                    ContrastDesign::MAX_VIEWS as f64,
                    "augmented views per image besides the classification view",
                ),
                P::int(
                    "centers",
                    1.0,
                    0.0,
                    1.0,
                    "1: class centers from the classifier's weights",
                ),
                P::float(
                    "scale",
                    30.0,
                    EPS,
                    1000.0,
                    "logit scale s of the cosine classifier",
                ),
            ],
        ),
        Factory::Classifier(|p| {
            Ok(ClassifierDesign {
                head: HeadKind::Cosine {
                    scale: p.get("scale") as f32,
                },
                experts: 1,
                contrast: Some(ContrastDesign {
                    dim: p.get("dim") as usize,
                    views: p.get("views") as usize,
                    centers: p.get("centers") >= 0.5,
                }),
                bilateral: false,
            })
        }),
    );
    let d = BclParams::CIFAR;
    add(
        decl(
            "bcl",
            "alpha CE(z + tau log pi) on the classification view plus beta x the balanced supervised contrastive loss over two views' embeddings and the class centers (class-averaged denominators, temperature T).",
            BCL,
            vec![
                P::float("alpha", d.alpha, 0.0, 100.0, "weight of the logit-adjusted CE"),
                P::float("beta", d.beta, 0.0, 100.0, "weight of the contrastive term"),
                P::float("temperature", d.temperature, 1e-3, 10.0, "contrastive temperature T"),
                P::float("tau", d.tau, 0.0, 10.0, "logit adjustment's tau"),
            ],
        )
        .needing(Needs {
            views: Some((2, 2)),
            centers: true,
            ..Needs::default()
        }),
        Factory::Loss(|p, ctx| {
            let params = BclParams {
                alpha: p.get("alpha"),
                beta: p.get("beta"),
                temperature: p.get("temperature"),
                tau: p.get("tau"),
            };
            built(p, losses::Bcl::new(counts(ctx), params))
        }),
    );
}
