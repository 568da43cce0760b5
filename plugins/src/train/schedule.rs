//! Optimizers as PyTorch configures them (SGD dampening 0, Adam epsilon from the spec, default
//! 1e-8; Burn's own defaults differ) and the per-epoch learning-rate schedules of the LT recipes:
//! constant, step (LDAM-DRW: x0.1 at given epochs) and cosine, each with an optional linear warm-up.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};

use crate::spec::{OptimizerSpec, ScheduleSpec};

/// Builds the optimizer a spec names (`sgd` or `adam`; the spec was validated).
pub fn build_optimizer(spec: &OptimizerSpec, weight_decay: f64) -> ModuleOptimizer {
    let decay = (weight_decay > 0.0).then_some(WeightDecayConfig {
        penalty: weight_decay as f32,
    });
    if spec.name == "adam" {
        AdamConfig::new()
            .with_beta_1(spec.beta1 as f32)
            .with_beta_2(spec.beta2 as f32)
            .with_epsilon(spec.eps as f32)
            .with_weight_decay(decay)
            .init()
    } else {
        let momentum = (spec.momentum > 0.0).then_some(MomentumConfig {
            momentum: spec.momentum,
            dampening: 0.0,
            nesterov: spec.nesterov,
        });
        SgdConfig::new()
            .with_momentum(momentum)
            .with_weight_decay(decay)
            .init()
    }
}

/// Learning rate for 0-based `epoch` of `epochs`.
///
/// Warm-up (Goyal et al. 2017, as in the LDAM-DRW code): `lr * (epoch + 1) / warmup_epochs` for
/// `epoch < warmup_epochs`. Step: `lr * gamma^(number of milestones <= epoch)`. Cosine
/// (Loshchilov & Hutter 2017, no restarts): `lr * (1 + cos(pi * t / T)) / 2` with `t` counted
/// after the warm-up and `T = epochs - warmup_epochs`.
pub fn learning_rate(base: f64, schedule: &ScheduleSpec, epoch: usize, epochs: usize) -> f64 {
    let warm = schedule.warmup_epochs;
    if epoch < warm {
        return base * (epoch + 1) as f64 / warm as f64;
    }
    match schedule.name.as_str() {
        "step" => {
            let passed = schedule.milestones.iter().filter(|&&m| m <= epoch).count();
            base * schedule.gamma.powi(passed as i32)
        }
        "cosine" => {
            let t = (epoch - warm) as f64;
            let total = epochs.saturating_sub(warm).max(1) as f64;
            base * 0.5 * (1.0 + (std::f64::consts::PI * t / total).cos())
        }
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(name: &str, warm: usize, milestones: Vec<usize>) -> ScheduleSpec {
        ScheduleSpec {
            name: name.into(),
            warmup_epochs: warm,
            milestones,
            gamma: 0.1,
        }
    }

    #[test]
    fn ldam_drw_step_schedule_matches_the_reference_code() {
        // kaidic/LDAM-DRW adjust_learning_rate: epoch <= 5 -> lr * epoch / 5 (1-based),
        // epoch > 180 -> lr * 0.0001, > 160 -> lr * 0.01 (0-based here: 160 and 180).
        let s = ScheduleSpec {
            gamma: 0.01,
            ..sched("step", 5, vec![160, 180])
        };
        let lr = |e| learning_rate(0.1, &s, e, 200);
        assert!((lr(0) - 0.02).abs() < 1e-12);
        assert!((lr(4) - 0.1).abs() < 1e-12);
        assert!((lr(159) - 0.1).abs() < 1e-12);
        assert!((lr(160) - 0.001).abs() < 1e-12);
        assert!((lr(180) - 0.00001).abs() < 1e-12);
    }

    #[test]
    fn cosine_goes_from_base_to_near_zero() {
        let s = sched("cosine", 0, vec![]);
        assert!((learning_rate(0.1, &s, 0, 10) - 0.1).abs() < 1e-12);
        // PyTorch CosineAnnealingLR(T_max=10) at epoch 5: 0.05.
        assert!((learning_rate(0.1, &s, 5, 10) - 0.05).abs() < 1e-12);
        assert!(learning_rate(0.1, &s, 9, 10) < 0.003);
    }

    #[test]
    fn constant_stays_put_after_warmup() {
        let s = sched("constant", 2, vec![]);
        assert!((learning_rate(0.2, &s, 0, 5) - 0.1).abs() < 1e-12);
        assert!((learning_rate(0.2, &s, 4, 5) - 0.2).abs() < 1e-12);
    }
}
