//! Re-balancing helpers that are not a loss of their own: the DRW schedule, which wraps the
//! run's loss, and post-hoc logit adjustment, a shift of the logits at evaluation.

use std::sync::Arc;

use super::super::params::ParamSpec as P;
use super::{Add, Factory, build_err, decl};
use crate::losses;

pub(super) fn register(add: &mut Add<'_>) {
    add(
        decl(
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
        Factory::LossSchedule(|p, ctx, base| {
            let start = (p.get("start_fraction") * ctx.epochs as f64).floor() as usize;
            let drw = losses::Drw::new(base, &ctx.class_counts, start, p.get("beta"))
                .map_err(|e| build_err("drw", e))?;
            Ok(Arc::new(drw))
        }),
    );
    add(
        decl(
            "logit-adjust-posthoc",
            "At evaluation: z - tau log pi_c.",
            "Menon et al., Long-Tail Learning via Logit Adjustment, ICLR 2021",
            vec![P::float("tau", 1.0, 0.0, 10.0, "adjustment strength")],
        ),
        Factory::PostHoc(|p, ctx| {
            Ok(crate::train::log_prior_shift(
                &ctx.class_counts,
                p.get("tau") as f32,
            ))
        }),
    );
}
