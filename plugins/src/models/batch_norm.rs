//! BatchNorm exactly as PyTorch's `nn.BatchNorm2d` trains it. Burn's `BatchNorm` normalizes the
//! same way but feeds its running variance with the *biased* batch variance, where PyTorch uses
//! the unbiased one (`n / (n - 1)` times larger, `n` = batch x height x width): the lockstep
//! check found cauda's running variances drifting from PyTorch's by ~1e-4 relative within three
//! steps of ResNet-8 on 8x8 digits (n = 512 in the last stage), which shifts every evaluation.
//!
//! Same fields (and so the same record and export names) as Burn's layer; a frozen layer
//! (`Module::freeze`, stage 2 of the decoupled methods) normalizes with its running statistics
//! and leaves them alone, as `module.eval()` does in PyTorch.

use std::cell::Cell;

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

thread_local! {
    /// Set while a data-parallel replica other than the first runs its forward pass.
    static SKIP_RUNNING_UPDATES: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with BatchNorm's running statistics left alone on this thread: the data-parallel
/// replicas past the first normalize with their shard's statistics but, as in PyTorch's DDP,
/// only the first replica's running statistics are kept (`train::parallel`). Burn's running
/// state is shared by a module's clones, so without this every replica would feed it.
pub fn without_running_updates<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            SKIP_RUNNING_UPDATES.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SKIP_RUNNING_UPDATES.with(|s| s.replace(true)));
    f()
}

/// Batch normalization over `[N, C, ...]`: `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// The learnable weight gamma (PyTorch `weight`).
    pub gamma: Param<Tensor<1>>,
    /// The learnable weight beta (PyTorch `bias`).
    pub beta: Param<Tensor<1>>,
    /// Whether training behaviour is enabled (a frozen layer's flag is off).
    pub training: Param<Flag>,
    pub running_mean: RunningState<Tensor<1>>,
    pub running_var: RunningState<Tensor<1>>,
    pub momentum: f64,
    pub epsilon: f64,
}

impl BatchNorm {
    /// PyTorch's defaults: gamma 1, beta 0, running mean 0 and variance 1, momentum 0.1,
    /// epsilon 1e-5.
    pub fn new(features: usize, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([features], device)),
            beta: Param::from_tensor(Tensor::zeros([features], device)),
            training: Param::from_bool(true),
            running_mean: RunningState::new(Tensor::zeros([features], device)),
            running_var: RunningState::new(Tensor::ones([features], device)),
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let trains = input.device().is_autodiff()
            && self.training.is_enabled()
            && self.gamma.is_require_grad();
        if trains {
            self.forward_train(input)
        } else {
            self.forward_inference(input)
        }
    }

    fn forward_inference<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        burn::tensor::module::batch_norm(
            input,
            self.gamma.val(),
            self.beta.val(),
            self.running_mean.value().to_device(&device),
            self.running_var.value().to_device(&device),
            self.epsilon,
        )
    }

    fn forward_train<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let device = input.device();
        let dims = input.dims();
        let per_channel = dims.iter().product::<usize>() / dims[1].max(1);
        // PyTorch's running variance: the unbiased estimate (Bessel's correction).
        let bessel = if per_channel > 1 {
            per_channel as f64 / (per_channel - 1) as f64
        } else {
            1.0
        };
        let result = burn::tensor::module::batch_norm_train(
            input,
            self.gamma.val(),
            self.beta.val(),
            self.epsilon,
        );
        if SKIP_RUNNING_UPDATES.with(Cell::get) {
            return result.output;
        }
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(result.mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(result.variance.detach().mul_scalar(m * bessel));
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        result.output
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::TensorData;

    use super::*;

    /// One channel, four values 0, 1, 2, 3, as `[4, 1, 1, 1]`.
    fn zero_to_three(device: &Device) -> Tensor<4> {
        Tensor::<4>::from_data(
            TensorData::new(vec![0f32, 1., 2., 3.], [4, 1, 1, 1]),
            device,
        )
    }

    #[test]
    fn running_variance_is_updated_with_the_unbiased_batch_variance() {
        let device = Device::default().autodiff();
        let bn = BatchNorm::new(1, &device);
        // One channel, four values 0, 1, 2, 3: mean 1.5, biased var 1.25, unbiased 5/3.
        let x = zero_to_three(&device);
        let _ = bn.forward(x);
        let bn = bn.valid();
        let mean: Vec<f32> = bn.running_mean.value().into_data().iter::<f32>().collect();
        let var: Vec<f32> = bn.running_var.value().into_data().iter::<f32>().collect();
        assert!((mean[0] - 0.15).abs() < 1e-6, "{mean:?}");
        // PyTorch: 0.9 * 1 + 0.1 * 5/3.
        assert!((var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6, "{var:?}");
    }

    #[test]
    fn gradients_are_the_analytic_ones() {
        // y = BN(x); L = sum(y * g) for a fixed g: dL/dbeta_c = sum g, dL/dgamma_c = sum g xhat.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (n, c, h, w) = (64, 3, 8, 8);
        let len = n * c * h * w;
        let xs: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..3.0)).collect();
        let gs: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
        let device = Device::default().autodiff();
        let bn = BatchNorm::new(c, &device);
        let x = Tensor::<4>::from_data(TensorData::new(xs.clone(), [n, c, h, w]), &device);
        let g = Tensor::<4>::from_data(TensorData::new(gs.clone(), [n, c, h, w]), &device);
        let loss = (bn.forward(x) * g).sum();
        let grads = loss.backward();
        let db: Vec<f32> = bn
            .beta
            .val()
            .grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        let dg: Vec<f32> = bn
            .gamma
            .val()
            .grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        for ch in 0..c {
            let idx = |i: usize, k: usize| (i * c + ch) * h * w + k;
            let vals: Vec<(f64, f64)> = (0..n)
                .flat_map(|i| (0..h * w).map(move |k| (i, k)))
                .map(|(i, k)| (f64::from(xs[idx(i, k)]), f64::from(gs[idx(i, k)])))
                .collect();
            let m = vals.iter().map(|v| v.0).sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v.0 - m).powi(2)).sum::<f64>() / vals.len() as f64;
            let beta: f64 = vals.iter().map(|v| v.1).sum();
            let gamma: f64 = vals
                .iter()
                .map(|v| v.1 * (v.0 - m) / (var + 1e-5).sqrt())
                .sum();
            assert!(
                (f64::from(db[ch]) - beta).abs() <= 1e-5 * beta.abs().max(1.0),
                "beta {ch}: {} vs {beta}",
                db[ch]
            );
            assert!(
                (f64::from(dg[ch]) - gamma).abs() <= 1e-5 * gamma.abs().max(1.0),
                "gamma {ch}: {} vs {gamma}",
                dg[ch]
            );
        }
    }

    #[test]
    fn a_frozen_layer_normalizes_with_its_running_statistics_and_keeps_them() {
        let device = Device::default().autodiff();
        let bn = BatchNorm::new(1, &device).freeze();
        let x = zero_to_three(&device);
        let y: Vec<f32> = bn.forward(x).into_data().iter::<f32>().collect();
        // Running mean 0, variance 1: y = x / sqrt(1 + 1e-5).
        assert!((y[3] - 3.0 / (1.0f32 + 1e-5).sqrt()).abs() < 1e-5, "{y:?}");
        let bn = bn.valid();
        let var: Vec<f32> = bn.running_var.value().into_data().iter::<f32>().collect();
        assert_eq!(var, vec![1.0]);
    }
}
