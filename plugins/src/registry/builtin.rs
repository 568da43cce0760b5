//! The built-in plugins: the survey's samplers, losses, re-balancing schedules, augmentations and
//! module improvements, each with its paper, doc line and the reference code's defaults.

use std::sync::Arc;

use super::params::ParamSpec as P;
use super::{BuildContext, Built, Family, Params, PluginInfo, Registry, RegistryError};
use crate::augment::{BatchMixer, Mixer};
use crate::losses::{self, Loss};
use crate::samplers;

const EPS: f64 = 1e-9;

fn info(
    family: Family,
    name: &'static str,
    doc: &'static str,
    paper: &'static str,
    params: Vec<P>,
) -> PluginInfo {
    PluginInfo {
        name,
        family,
        doc,
        paper,
        params,
    }
}

fn build_err(plugin: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Build {
        plugin: plugin.to_string(),
        message: e.to_string(),
    }
}

/// Every built-in plugin, registered once.
pub fn builtin_registry() -> Registry {
    let mut r = Registry::default();
    let kang = "Kang et al., Decoupling Representation and Classifier for Long-Tailed Recognition, ICLR 2020";
    let mut add = |i: PluginInfo, f: super::Factory| {
        // Names are distinct by construction; the registry test checks the table loads.
        let _ = r.register(i, f);
    };
    use Family::*;
    add(
        info(
            Sampler,
            "instance",
            "Instance-balanced: every image once per epoch in a seeded order (p_c ~ n_c).",
            kang,
            vec![],
        ),
        |_, _| Ok(Built::Sampler(Arc::new(samplers::InstanceBalanced))),
    );
    add(
        info(
            Sampler,
            "class-balanced",
            "Class-balanced: a uniform class, then a uniform image of it (p_c = 1/C).",
            kang,
            vec![],
        ),
        |_, _| Ok(Built::Sampler(Arc::new(samplers::ClassBalanced))),
    );
    add(
        info(
            Sampler,
            "square-root",
            "Square-root sampling: p_c ~ sqrt(n_c).",
            kang,
            vec![],
        ),
        |_, _| Ok(Built::Sampler(Arc::new(samplers::SquareRoot))),
    );
    add(
        info(
            Sampler,
            "progressively-balanced",
            "p_c(t) = (1 - t/T) n_c/N + (t/T) / C over epochs t of T.",
            kang,
            vec![],
        ),
        |_, _| Ok(Built::Sampler(Arc::new(samplers::ProgressivelyBalanced))),
    );
    add(
        info(
            Sampler,
            "class-aware",
            "Class-aware epochs of max n_c x C draws: classes in random cycles, per_visit images of each (cRT/LWS stage 2).",
            kang,
            vec![P::int(
                "per_visit",
                4.0,
                1.0,
                1024.0,
                "images per class visit (num_samples_cls)",
            )],
        ),
        |p, _| {
            Ok(Built::Sampler(Arc::new(samplers::ClassAware {
                per_visit: p.get("per_visit") as usize,
            })))
        },
    );

    add(
        info(
            Loss,
            "ce",
            "Softmax cross-entropy (the baseline).",
            "Zhang et al., Deep Long-Tailed Learning: A Survey, TPAMI 2023 (baseline)",
            vec![],
        ),
        loss_factory,
    );
    add(
        info(
            Loss,
            "weighted-ce",
            "Cross-entropy with w_c ~ 1/n_c (sum C).",
            "Survey Sec. 3.1.2 (class-sensitive learning)",
            vec![],
        ),
        loss_factory,
    );
    add(
        info(
            Loss,
            "class-balanced",
            "w_c ~ (1-beta)/(1-beta^n_c) (sum C) over CE (gamma = 0) or focal (gamma > 0).",
            "Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019",
            vec![
                P::float("beta", 0.9999, 0.0, 0.999_999, "effective-number beta"),
                P::float("gamma", 0.0, 0.0, 10.0, "focal gamma; 0 = cross-entropy"),
            ],
        ),
        loss_factory,
    );
    add(
        info(
            Loss,
            "focal",
            "-(1-p_y)^gamma log p_y.",
            "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017",
            vec![P::float("gamma", 2.0, 0.0, 10.0, "focusing parameter")],
        ),
        loss_factory,
    );
    add(
        info(
            Loss,
            "ldam",
            "CE(s (z - m_y e_y)), m_c ~ n_c^-1/4 with max m; needs a cosine classifier.",
            "Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019",
            vec![
                P::float("max_m", 0.5, EPS, 5.0, "largest margin"),
                P::float("s", 30.0, EPS, 100.0, "logit scale"),
            ],
        ),
        loss_factory,
    );
    add(
        info(
            Loss,
            "balanced-softmax",
            "Cross-entropy on z + log n_c.",
            "Ren et al., Balanced Meta-Softmax for Long-Tailed Visual Recognition, NeurIPS 2020",
            vec![],
        ),
        loss_factory,
    );
    add(
        info(
            Loss,
            "logit-adjusted",
            "Cross-entropy on z + tau log pi_c.",
            "Menon et al., Long-Tail Learning via Logit Adjustment, ICLR 2021",
            vec![P::float("tau", 1.0, 0.0, 10.0, "adjustment strength")],
        ),
        loss_factory,
    );

    add(
        info(
            Rebalance,
            "drw",
            "Deferred re-weighting: class-balanced weights (beta) from start_fraction of the epochs on.",
            "Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019",
            vec![
                P::float(
                    "start_fraction",
                    0.8,
                    0.0,
                    1.0,
                    "fraction of epochs before re-weighting starts (160/200 in the paper)",
                ),
                P::float("beta", 0.9999, 0.0, 0.999_999, "effective-number beta"),
            ],
        ),
        params_factory,
    );
    add(
        info(
            Rebalance,
            "logit-adjust-posthoc",
            "At evaluation: z - tau log pi_c.",
            "Menon et al., Long-Tail Learning via Logit Adjustment, ICLR 2021",
            vec![P::float("tau", 1.0, 0.0, 10.0, "adjustment strength")],
        ),
        params_factory,
    );

    add(
        info(
            Augment,
            "mixup",
            "x = lam x_i + (1-lam) x_j, same lam for the labels; lam ~ Beta(alpha, alpha).",
            "Zhang et al., mixup: Beyond Empirical Risk Minimization, ICLR 2018",
            vec![P::float("alpha", 1.0, EPS, 10.0, "Beta parameter")],
        ),
        mixer_factory,
    );
    add(
        info(
            Augment,
            "cutmix",
            "Paste a box of x_j into x_i; label weight = kept area.",
            "Yun et al., CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features, ICCV 2019",
            vec![P::float("alpha", 1.0, EPS, 10.0, "Beta parameter")],
        ),
        mixer_factory,
    );
    add(
        info(
            Augment,
            "remix",
            "Mixup whose label weight goes to the minority class when n_i/n_j >= kappa and lam < tau.",
            "Chou et al., Remix: Rebalanced Mixup, ECCV Workshops 2020",
            vec![
                P::float("alpha", 1.0, EPS, 10.0, "Beta parameter"),
                P::float("kappa", 3.0, 1.0, 1000.0, "imbalance ratio threshold"),
                P::float("tau", 0.5, 0.0, 1.0, "mixing threshold"),
            ],
        ),
        mixer_factory,
    );

    add(
        info(
            Module,
            "cosine",
            "Cosine classifier s * cos(f, w_c).",
            "Gidaris & Komodakis, Dynamic Few-Shot Visual Learning without Forgetting, CVPR 2018",
            vec![P::float("scale", 16.0, EPS, 1000.0, "logit scale s")],
        ),
        params_factory,
    );
    let stage2 = |lr: f64| {
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
    };
    add(
        info(
            Module,
            "crt",
            "Stage 2: re-initialized classifier on the frozen backbone, class-balanced sampling.",
            kang,
            stage2(0.05),
        ),
        params_factory,
    );
    add(
        info(
            Module,
            "lws",
            "Stage 2: per-class scales of the frozen classifier, class-balanced sampling.",
            kang,
            stage2(0.05),
        ),
        params_factory,
    );
    add(
        info(
            Module,
            "tau-norm",
            "Post hoc: w_c / ||w_c||^tau; tau picked on validation when there is a validation split.",
            kang,
            vec![P::float(
                "tau",
                1.0,
                0.0,
                2.0,
                "normalization power when there is no validation split",
            )],
        ),
        params_factory,
    );
    // Alshammari et al.'s released code (demo1/demo2): stage 1 with weight decay 5e-3 and no
    // MaxNorm; stage 2 trains only the classifier (weight and bias) at lr 0.01 with weight decay
    // 0.1 under MaxNorm, whose radius is relative: min ||w_c|| + thresh (max - min) over the
    // classifier's rows when stage 2 starts.
    let mut wb = stage2(0.01);
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
        info(
            Module,
            "weight-balancing",
            "Strong weight decay in stage 1; stage 2 re-trains the classifier with a class-balanced loss, weight decay and MaxNorm.",
            "Alshammari et al., Long-Tailed Recognition via Weight Balancing, CVPR 2022",
            wb,
        ),
        params_factory,
    );
    r
}

fn params_factory(p: &Params, _: &BuildContext) -> Result<Built, RegistryError> {
    Ok(Built::Params(p.clone()))
}

fn loss_factory(p: &Params, ctx: &BuildContext) -> Result<Built, RegistryError> {
    Ok(Built::Loss(Arc::from(make_loss(p, &ctx.class_counts)?)))
}

fn mixer_factory(p: &Params, _: &BuildContext) -> Result<Built, RegistryError> {
    let mixer = match p.plugin.as_str() {
        "mixup" => Mixer::Mixup {
            alpha: p.get("alpha"),
        },
        "cutmix" => Mixer::CutMix {
            alpha: p.get("alpha"),
        },
        _ => Mixer::Remix {
            alpha: p.get("alpha"),
            kappa: p.get("kappa"),
            tau: p.get("tau"),
        },
    };
    Ok(Built::Mixer(Arc::new(mixer)))
}

fn make_loss(p: &Params, counts: &[usize]) -> Result<Box<dyn Loss>, RegistryError> {
    let e = |err: losses::LossError| build_err(&p.plugin, err);
    Ok(match p.plugin.as_str() {
        "ce" => Box::new(losses::CrossEntropy::new().map_err(e)?),
        "weighted-ce" => Box::new(losses::WeightedCe::new(counts).map_err(e)?),
        "class-balanced" => {
            let gamma = p.get("gamma");
            let base = if gamma > 0.0 {
                losses::ClassBalancedBase::Focal { gamma }
            } else {
                losses::ClassBalancedBase::CrossEntropy
            };
            Box::new(losses::ClassBalanced::new(counts, p.get("beta"), base).map_err(e)?)
        }
        "focal" => Box::new(losses::Focal::new(p.get("gamma")).map_err(e)?),
        "ldam" => Box::new(losses::Ldam::new(counts, p.get("max_m"), p.get("s")).map_err(e)?),
        "balanced-softmax" => Box::new(losses::BalancedSoftmax::new(counts).map_err(e)?),
        "logit-adjusted" => Box::new(losses::LogitAdjusted::new(counts, p.get("tau")).map_err(e)?),
        other => return Err(build_err(other, "not a loss")),
    })
}

/// The run's loss, wrapped in DRW when the run has a DRW schedule.
pub fn build_loss(
    _registry: &Registry,
    loss: &Params,
    drw: Option<&Params>,
    ctx: &BuildContext,
) -> Result<Arc<dyn Loss>, RegistryError> {
    let base = make_loss(loss, &ctx.class_counts)?;
    Ok(match drw {
        None => Arc::from(base),
        Some(d) => {
            let start = (d.get("start_fraction") * ctx.epochs as f64).floor() as usize;
            Arc::new(
                losses::Drw::new(base, &ctx.class_counts, start, d.get("beta"))
                    .map_err(|e| build_err("drw", e))?,
            )
        }
    })
}

/// The run's batch mixer.
pub fn build_mixer(
    registry: &Registry,
    mixer: &Params,
    ctx: &BuildContext,
) -> Result<Arc<dyn BatchMixer>, RegistryError> {
    match registry.build_params(Family::Augment, mixer, ctx)? {
        Built::Mixer(m) => Ok(m),
        _ => Err(build_err(&mixer.plugin, "not a batch augmentation")),
    }
}

/// Validated parameters of a built-in plugin with some values set.
pub fn validated(
    registry: &Registry,
    family: Family,
    name: &str,
    values: &[(&str, f64)],
) -> Result<Params, RegistryError> {
    let mut p = super::PluginRef::named(name);
    for (k, v) in values {
        p.params.insert(k.to_string(), toml::Value::Float(*v));
    }
    registry.validate(family, &p)
}
