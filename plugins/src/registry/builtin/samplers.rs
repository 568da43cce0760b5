//! Re-sampling plugins (Kang et al. ICLR 2020's formulation).

use std::sync::Arc;

use super::super::params::ParamSpec as P;
use super::{Add, BBN, Factory, KANG, decl};
use crate::samplers;

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
            "instance",
            "Instance-balanced: every image once per epoch in a seeded order (p_c ~ n_c).",
            KANG,
            vec![],
        ),
        Factory::Sampler(|_, _| Ok(Arc::new(samplers::InstanceBalanced))),
    );
    add(
        decl(
            "class-balanced",
            "Class-balanced: a uniform class, then a uniform image of it (p_c = 1/C).",
            KANG,
            vec![],
        ),
        Factory::Sampler(|_, _| Ok(Arc::new(samplers::ClassBalanced))),
    );
    add(
        decl(
            "square-root",
            "Square-root sampling: p_c ~ sqrt(n_c).",
            KANG,
            vec![],
        ),
        Factory::Sampler(|_, _| Ok(Arc::new(samplers::SquareRoot))),
    );
    add(
        decl(
            "progressively-balanced",
            "p_c(t) = (1 - t/T) n_c/N + (t/T) / C over epochs t of T.",
            KANG,
            vec![],
        ),
        Factory::Sampler(|_, _| Ok(Arc::new(samplers::ProgressivelyBalanced))),
    );
    add(
        decl(
            "class-aware",
            "Class-aware epochs of max n_c x C draws: classes in random cycles, per_visit images of each (cRT/LWS stage 2).",
            KANG,
            vec![P::int(
                "per_visit",
                4.0,
                1.0,
                1024.0,
                "images per class visit (num_samples_cls)",
            )],
        ),
        Factory::Sampler(|p, _| {
            Ok(Arc::new(samplers::ClassAware {
                per_visit: p.get("per_visit") as usize,
            }))
        }),
    );
    add(
        decl(
            "reversed",
            "Reversed sampling (BBN's re-balancing branch): p_c = w_c / sum_j w_j with w_c = n_max / n_c, then a uniform image of c.",
            BBN,
            vec![],
        ),
        Factory::Sampler(|_, _| Ok(Arc::new(samplers::Reversed))),
    );
}
