//! The multi-expert CIFAR ResNet of RIDE (Wang et al., ICLR 2021) and SADE (Zhang et al.,
//! NeurIPS 2022), as their `ResNet_s` builds it (frank-xwang/RIDE-LongTailRecognition and
//! Vanint/SADE-AgnosticLT, `model/ldam_drw_resnets/expert_resnet_cifar.py`): the stem and the
//! first stage are shared; every expert has its own second and third stage and its own classifier.
//! With `reduce_dimension` (both papers' CIFAR configs) an expert's stages are 24 and 48 maps
//! wide instead of 32 and 64, so three experts cost about what one wider network does.
//!
//! The forward pass concatenates the experts' pooled features `[N, E x 48]`; the head
//! ([`super::Head`] with `experts = E`) gives each expert its own slice, and the model's logits are
//! the mean of the experts' logits, as `ResNet_s.forward`'s `final_out` is.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::batch_norm::BatchNorm;
use super::resnet::{BasicBlock, Shortcut, conv};

/// The widths of an expert's second and third stage (`reduce_dimension = True`).
pub const EXPERT_WIDTHS: [usize; 2] = [24, 48];

/// One expert: its own second and third stage.
#[derive(Module, Debug)]
pub struct ExpertBranch {
    blocks: Vec<BasicBlock>,
}

impl ExpertBranch {
    fn new(blocks_per_stage: usize, sc: Shortcut, device: &Device) -> Self {
        let mut blocks = Vec::with_capacity(2 * blocks_per_stage);
        let mut cin = 16;
        for cout in EXPERT_WIDTHS {
            for b in 0..blocks_per_stage {
                let stride = if b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(cin, cout, stride, sc, device));
                cin = cout;
            }
        }
        Self { blocks }
    }

    /// Pooled features `[N, 48]` of the shared maps `[N, 16, H, W]`.
    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x: Tensor<3> = x.flatten(2, 3);
        x.mean_dim(2).flatten(1, 2)
    }
}

/// A CIFAR ResNet-(6n+2) whose last two stages are `experts` separate branches.
#[derive(Module, Debug)]
pub struct ExpertResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    /// The shared first stage.
    trunk: Vec<BasicBlock>,
    branches: Vec<ExpertBranch>,
}

impl ExpertResNet {
    /// Width of one expert's pooled features.
    pub const EXPERT_FEATURES: usize = EXPERT_WIDTHS[1];

    pub fn new(
        channels: usize,
        blocks_per_stage: usize,
        sc: Shortcut,
        experts: usize,
        device: &Device,
    ) -> Self {
        // Drawn in the order of PyTorch's `ResNet_s.__init__` (stem, layer1, layer2s, layer3s),
        // not that it matters for agreement: the lockstep check copies the initial weights.
        let stem = conv(channels, 16, 3, 1, sc, device);
        let stem_bn = BatchNorm::new(16, device);
        let trunk = (0..blocks_per_stage)
            .map(|_| BasicBlock::new(16, 16, 1, sc, device))
            .collect();
        let branches = (0..experts)
            .map(|_| ExpertBranch::new(blocks_per_stage, sc, device))
            .collect();
        Self {
            stem,
            stem_bn,
            trunk,
            branches,
        }
    }

    pub fn experts(&self) -> usize {
        self.branches.len()
    }

    /// The experts' pooled features side by side, `[N, experts x 48]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem_bn.forward(self.stem.forward(x)));
        for block in &self.trunk {
            x = block.forward(x);
        }
        let per_expert = self.branches.iter().map(|b| b.forward(x.clone())).collect();
        Tensor::cat(per_expert, 1)
    }
}
