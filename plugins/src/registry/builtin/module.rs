//! Module-improvement plugins: the cosine classifier and the decoupled stage-2 methods (each a
//! [`crate::stage2::Stage2Method`] in its own file under `stage2/`), and distillation from the
//! stage-1 model, which uses the same seam (the survey files it under transfer learning).

use std::sync::Arc;

use super::super::Needs;
use super::super::params::ParamSpec as P;
use super::{Add, DISALIGN, EPS, Factory, GCL, KANG, decl};
use crate::models::HeadKind;
use crate::stage2;

/// The parameters every training stage 2 has.
fn stage2_params(lr: f64) -> Vec<P> {
    vec![
        P::int("epochs", 10.0, 1.0, 1000.0, "stage-2 epochs"),
        P::float(
            "lr",
            lr,
            EPS,
            10.0,
            "stage-2 learning rate (cosine schedule)",
        ),
    ]
}

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
            "cosine",
            "Cosine classifier s * cos(f, w_c).",
            "Gidaris & Komodakis, Dynamic Few-Shot Visual Learning without Forgetting, CVPR 2018",
            vec![P::float("scale", 16.0, EPS, 1000.0, "logit scale s")],
        ),
        Factory::Classifier(|p| {
            Ok(HeadKind::Cosine {
                scale: p.get("scale") as f32,
            }
            .into())
        }),
    );
    add(
        decl(
            "crt",
            "Stage 2: re-initialized classifier on the frozen backbone, class-balanced sampling.",
            KANG,
            stage2_params(0.05),
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::KangRetrain::crt(p)))),
    );
    add(
        decl(
            "lws",
            "Stage 2: per-class scales of the frozen classifier, class-balanced sampling.",
            KANG,
            stage2_params(0.05),
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::KangRetrain::lws(p)))),
    );
    add(
        decl(
            "tau-norm",
            "Post hoc: w_c / ||w_c||^tau; tau picked on validation when there is a validation split.",
            KANG,
            vec![P::float(
                "tau",
                1.0,
                0.0,
                2.0,
                "normalization power when there is no validation split",
            )],
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::TauNorm::from_params(p)))),
    );
    // Alshammari et al.'s released code (demo1/demo2): stage 1 with weight decay 5e-3 and no
    // MaxNorm; stage 2 trains only the classifier (weight and bias) at lr 0.01 with weight decay
    // 0.1 under MaxNorm, whose radius is relative: min ||w_c|| + thresh (max - min) over the
    // classifier's rows when stage 2 starts.
    let mut wb = stage2_params(0.01);
    wb.push(P::float(
        "stage1_weight_decay",
        5e-3,
        0.0,
        1.0,
        "weight decay of stage 1 (the tuned, strong weight decay)",
    ));
    wb.push(P::float(
        "weight_decay",
        0.1,
        0.0,
        1.0,
        "weight decay of stage 2 (the classifier)",
    ));
    wb.push(P::float(
        "thresh",
        0.1,
        0.0,
        1.0,
        "MaxNorm radius relative to the row norms at stage-2 start: min + thresh (max - min)",
    ));
    add(
        decl(
            "weight-balancing",
            "Strong weight decay in stage 1; stage 2 re-trains the classifier with a class-balanced loss, weight decay and MaxNorm.",
            "Alshammari et al., Long-Tailed Recognition via Weight Balancing, CVPR 2022",
            wb,
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::WeightBalancing::from_params(p)))),
    );
    let mut mislas = stage2_params(0.1);
    mislas.extend([
        P::float(
            "lr_factor",
            0.5,
            EPS,
            1.0,
            "the classifier's learning rate relative to the weight scales' (lr)",
        ),
        P::float("weight_decay", 2e-4, 0.0, 1.0, "weight decay of stage 2"),
        P::float(
            "smooth_head",
            0.3,
            0.0,
            0.99,
            "label-aware smoothing of the largest class",
        ),
        P::float(
            "smooth_tail",
            0.0,
            0.0,
            0.99,
            "label-aware smoothing of the smallest class",
        ),
        P::int(
            "per_visit",
            1.0,
            1.0,
            1024.0,
            "images per class visit of the class-aware sampler (MiSLAS's default 1)",
        ),
    ]);
    add(
        decl(
            "mislas",
            "Stage 2: the stage-1 classifier and per-class logit scales trained on the frozen backbone with label-aware smoothing, class-balanced sampling.",
            "Zhong et al., Improving Calibration for Long-Tailed Recognition (MiSLAS), CVPR 2021",
            mislas,
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::Mislas::from_params(p)))),
    );
    let mut gcl = vec![
        P::int("epochs", 30.0, 1.0, 1000.0, "stage-2 epochs"),
        P::float(
            "lr",
            0.02,
            EPS,
            10.0,
            "stage-2 learning rate (cosine schedule; the script's 0.1 x 0.1 x 2)",
        ),
    ];
    gcl.extend([
        P::float("m", 0.1, 0.0, 1.0, "margin of the true class"),
        P::float("s", 20.0, EPS, 100.0, "logit scale"),
        P::float(
            "noise_mul",
            0.5,
            0.0,
            10.0,
            "largest cloud, the rarest class'",
        ),
        P::float(
            "gamma",
            1.0,
            0.0,
            10.0,
            "focal factor (the script's train_cls)",
        ),
        P::float(
            "mixup_alpha",
            1.0,
            0.0,
            10.0,
            "mixup's Beta parameter in stage 2 (0: no mixup)",
        ),
    ]);
    add(
        decl(
            "gcl-classifier",
            "Stage 2: the stage-1 cosine classifier trained on the frozen backbone with the GCL loss (margin, focal factor), mixup and class-balanced sampling.",
            GCL,
            gcl,
        )
        .needing(Needs {
            cosine_head: true,
            ..Needs::default()
        }),
        Factory::Stage2(|p| Ok(Arc::new(stage2::GclClassifier::from_params(p)))),
    );
    let mut disalign = stage2_params(0.1);
    disalign.extend([
        P::float("weight_decay", 5e-4, 0.0, 1.0, "weight decay of stage 2"),
        P::float(
            "rho",
            1.2,
            0.0,
            10.0,
            "generalized re-weighting power (ImageNet-LT config's GRW_SCALE)",
        ),
    ]);
    add(
        decl(
            "disalign",
            "Stage 2: backbone and classifier frozen; the logits calibrated as (1 + sigma alpha) z + sigma beta, sigma = sigmoid(v . x + b), trained with generalized re-weighting.",
            DISALIGN,
            disalign,
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::DisAlign::from_params(p)))),
    );
    add(
        decl(
            "kd",
            "Stage 2: a new model trained from scratch with the run's recipe against the frozen stage-1 model (the teacher): (1 - alpha) L_task + alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T)).",
            "Hinton et al., Distilling the Knowledge in a Neural Network, 2015; for long-tailed learning: Xiang et al., Learning From Multiple Experts (LFME), ECCV 2020; He et al., Distilling Virtual Examples for Long-tailed Recognition (DiVE), ICCV 2021",
            vec![
                P::float(
                    "alpha",
                    0.5,
                    0.0,
                    1.0,
                    "weight of the distillation term; the run's loss gets 1 - alpha (DiVE: 0.5)",
                ),
                P::float(
                    "temperature",
                    3.0,
                    0.1,
                    100.0,
                    "softmax temperature T of teacher and student (DiVE: 3; LFME: 2)",
                ),
            ],
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::Distil::from_params(p)))),
    );
    add(
        decl(
            "ncm",
            "Post hoc: the classifier becomes the class means of the L2-normalized training features; logits s cos(f, mean_c).",
            KANG,
            vec![P::float(
                "scale",
                1.0,
                EPS,
                1000.0,
                "logit scale s (1: the reference's raw cosine; argmax does not depend on it)",
            )],
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::Ncm::from_params(p)))),
    );
    add(
        decl(
            "knn",
            "Post hoc: k-nearest-neighbour vote over the L2-normalized training features, each of the k most cosine-similar images voting exp(s / T) for its class.",
            "Wu et al., Unsupervised Feature Learning via Non-Parametric Instance Discrimination, CVPR 2018 (the weighted vote); Caron et al., Emerging Properties in Self-Supervised Vision Transformers (DINO), ICCV 2021 (k = 20, T = 0.07)",
            vec![
                P::int(
                    "k",
                    20.0,
                    1.0,
                    100_000.0,
                    "neighbours that vote (DINO's best of 10, 20, 100, 200)",
                ),
                P::float(
                    "temperature",
                    0.07,
                    1e-3,
                    100.0,
                    "T of the vote weights exp(s / T)",
                ),
            ],
        ),
        Factory::Stage2(|p| Ok(Arc::new(stage2::Knn::from_params(p)))),
    );
}
