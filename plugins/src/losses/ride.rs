//! RIDE's routing-free training loss: every expert over the shared trunk learns with LDAM (and,
//! late in training, class-balanced weights), while a distribution-aware diversity term pushes
//! each expert's prediction away from the ensemble's (Wang et al., "Long-tailed Recognition by
//! Routing Diverse Distribution-Aware Experts", ICLR 2021).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

use super::class_stats::{check_beta, check_param, effective_number_weights, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::error::{LossError, Result};
use super::ldam::Ldam;
use super::sade::{expert, expert_logits};
use super::{Loss, Step};

const NAME: &str = "ride";

/// The RIDE loss (reference code frank-xwang/RIDE-LongTailRecognition `RIDELoss`), summed over
/// the experts `e` with logits `z_e = s cos(f_e, w_e)` (the model's scale `s`) and the
/// ensemble's `z = mean_e z_e`:
///
/// `L = sum_e [ CE_w(z_e - s m_y e_y, y) + lambda T^2 KL(softmax(z / T_c) || softmax(z_e / T_c)) ]`
///
/// - `m_c ~ n_c^(-1/4)`, largest `max_m` (LDAM's margins, in the scaled logits' units by `s`);
/// - before `reweight_start` (a fraction of the epochs: the CIFAR config's 160 of 200) the CE is
///   unweighted and `T_c = T` (`base_temperature`); from it on the CE is weighted by the
///   effective-number weights (`beta`, sum C: `sum_i w_yi l_i / sum_i w_yi`) and the temperature
///   is per class, `T_c = T w'_c` with `w'_c = C pi_c r + 1 - r` over its maximum (`r` =
///   `reweight_factor`), and the KL's factor `T^2` becomes `mean_c(T_c)^2`;
/// - the KL is `batchmean` and its target (the ensemble) carries no gradient;
/// - `lambda` (`diversity_factor`) is negative: experts are pushed apart (-0.2 by the
///   reference's default, -0.45 in its CIFAR-100 config).
///
/// A mixed batch is refused, as the reference trains without mixing.
#[derive(Debug, Clone)]
pub struct Ride {
    margins: Vec<f32>,
    s: f64,
    diversity_factor: f64,
    base_temperature: f64,
    /// The first epoch (0-based) with the class-balanced CE and per-class temperatures.
    reweight_epoch: Option<usize>,
    base_weights: Vec<f32>,
    diversity_weights: Vec<f32>,
}

/// RIDE's parameters as the registry reads them.
#[derive(Debug, Clone, Copy)]
pub struct RideParams {
    pub max_m: f64,
    pub s: f64,
    pub diversity_factor: f64,
    pub base_temperature: f64,
    /// `None`: never re-weight.
    pub reweight_epoch: Option<usize>,
    pub reweight_factor: f64,
    pub beta: f64,
}

impl Ride {
    pub const DEFAULT_DIVERSITY: f64 = -0.2;
    pub const DEFAULT_REWEIGHT_FACTOR: f64 = 0.05;

    /// From the per-class training counts (all > 0).
    pub fn new(counts: &[usize], p: RideParams) -> Result<Self> {
        let ldam = Ldam::new(counts, p.max_m, p.s).map_err(rename)?;
        let n = validate_counts(NAME, counts)?;
        let base_temperature =
            check_param(NAME, "base_temperature", p.base_temperature, "T > 0", |t| {
                t > 0.0
            })?;
        let diversity_factor = check_param(
            NAME,
            "diversity_factor",
            p.diversity_factor,
            "a finite number",
            |_| true,
        )?;
        let r = check_param(
            NAME,
            "reweight_factor",
            p.reweight_factor,
            "0 <= r < 1",
            |r| (0.0..1.0).contains(&r),
        )?;
        let beta = check_beta(NAME, p.beta)?;
        let total: f64 = n.iter().sum();
        let c = n.len() as f64;
        let raw: Vec<f64> = n.iter().map(|&k| c * (k / total) * r + 1.0 - r).collect();
        let largest = raw.iter().copied().fold(0.0, f64::max);
        Ok(Self {
            margins: ldam.margins().to_vec(),
            s: p.s,
            diversity_factor,
            base_temperature,
            reweight_epoch: p.reweight_epoch,
            base_weights: effective_number_weights(&n, beta),
            diversity_weights: raw.iter().map(|&w| (w / largest) as f32).collect(),
        })
    }

    fn reweighting(&self, epoch: usize) -> bool {
        self.reweight_epoch.is_some_and(|start| epoch >= start)
    }
}

fn rename(e: LossError) -> LossError {
    match e {
        LossError::InvalidParameter {
            param,
            value,
            allowed,
            ..
        } => LossError::InvalidParameter {
            loss: NAME,
            param,
            value,
            allowed,
        },
        other => other,
    }
}

impl Loss for Ride {
    /// Without experts, one expert's LDAM term (`s` applied to cosine logits by the loss).
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [_, c] = logits.dims();
        let device = logits.device();
        let target = labels.clone().one_hot::<2>(c).float();
        let m = Tensor::<1>::from_floats(self.margins.as_slice(), &device).reshape([1, c]);
        ce_per_sample(logits - target * m.mul_scalar(self.s), labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.margins.len())
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        Some(self.experts_loss(step))
    }
}

impl Ride {
    fn experts_loss(&self, step: &Step) -> Result<Tensor<1>> {
        let c = self.margins.len();
        let z = expert_logits(NAME, step, 0, c)?;
        let [e, n, _] = z.dims();
        let device = z.device();
        let reweight = self.reweighting(step.epoch);
        let labels = step.labels.clone();
        let row = |v: &[f32]| Tensor::<1>::from_floats(v, &device).reshape([1, c]);
        // The ensemble's output, the diversity target (no gradient through it).
        let mean = z.clone().mean_dim(0).reshape([n, c]).detach();
        let (temperature, t_mean) = if reweight {
            let t: Vec<f32> = self
                .diversity_weights
                .iter()
                .map(|&w| (self.base_temperature * w as f64) as f32)
                .collect();
            let mean_t = t.iter().map(|&x| x as f64).sum::<f64>() / c as f64;
            (row(&t), mean_t)
        } else {
            (
                Tensor::<2>::ones([1, c], &device).mul_scalar(self.base_temperature),
                self.base_temperature,
            )
        };
        let target_dist = softmax(mean / temperature.clone(), 1);
        let log_target = target_dist.clone().clamp_min(1e-30).log();
        let onehot = labels.clone().one_hot::<2>(c).float();
        let margin = onehot * row(&self.margins).mul_scalar(self.s);
        let weights = reweight.then(|| {
            let w = Tensor::<1>::from_floats(self.base_weights.as_slice(), &device);
            w.select(0, labels.clone())
        });
        let mut total: Option<Tensor<1>> = None;
        for i in 0..e {
            let zi = expert(&z, i);
            let l = ce_per_sample(zi.clone() - margin.clone(), labels.clone());
            let base = match &weights {
                Some(w) => (l * w.clone()).sum() / w.clone().sum(),
                None => l.mean(),
            };
            let log_q = log_softmax(zi / temperature.clone(), 1);
            let kl = (target_dist.clone() * (log_target.clone() - log_q))
                .sum()
                .div_scalar(n as f64);
            let term = base + kl.mul_scalar(self.diversity_factor * t_mean * t_mean);
            total = Some(match total {
                Some(t) => t + term,
                None => term,
            });
        }
        Ok(total.expect("at least two experts"))
    }
}
