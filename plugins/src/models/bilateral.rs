//! BBN's bilateral-branch CIFAR ResNet (Zhou et al., "BBN: Bilateral-Branch Network with
//! Cumulative Learning for Long-Tailed Visual Recognition", CVPR 2020; Megvii-Nanjing/BBN,
//! `lib/backbone/resnet_cifar.py` `BBN_ResNet_Cifar`): the CIFAR ResNet's stem and blocks are
//! shared but for its last residual block, which the conventional branch (`cb_block`) and the
//! re-balancing branch (`rb_block`) each have their own copy of.
//!
//! In training each branch sees its own stream ([`BilateralResNet::branch_features`]: the main
//! batch through branch 0, the second sampler stream's batch through branch 1, each a forward of
//! its own through the shared blocks, as BBN's two `model(image, feature_cb/rb=True)` calls);
//! at evaluation both branches see the same images and their pooled features are concatenated,
//! `[f_c, f_r]` (BBN's `forward` without a flag), for the one linear classifier over both.
//!
//! The depth is the named network's: ResNet-(6n+2) with its last block per branch. For n >= 2
//! that is BBN's exactly (ResNet-32: four shared blocks in the third stage, then `cb_block` and
//! `rb_block`, 64 to 64 maps). For ResNet-8 (n = 1) the per-branch block is the third stage's
//! only one (32 to 64 maps, stride 2), where BBN's `_make_layer(.., num_blocks[2] - 1, ..)`
//! would still build one shared block (its `[stride] + [1] * (0 - 1)` is one stride) and add the
//! two branch blocks after it, a ResNet-10.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::batch_norm::BatchNorm;
use super::resnet::{BasicBlock, Shortcut, conv};

/// A CIFAR ResNet-(6n+2) whose last block is two branches.
#[derive(Module, Debug)]
pub struct BilateralResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    /// Every block but the last, shared.
    trunk: Vec<BasicBlock>,
    /// The last block, once per branch: 0 conventional, 1 re-balancing.
    branches: Vec<BasicBlock>,
}

impl BilateralResNet {
    /// Width of one branch's pooled features.
    pub const BRANCH_FEATURES: usize = 64;
    /// The conventional branch (the main stream's).
    pub const CONVENTIONAL: usize = 0;
    /// The re-balancing branch (the second stream's).
    pub const REBALANCING: usize = 1;

    pub fn new(channels: usize, blocks_per_stage: usize, sc: Shortcut, device: &Device) -> Self {
        let mut trunk = Vec::with_capacity(3 * blocks_per_stage);
        let mut cin = 16;
        let mut last = (16, 16, 1);
        for (stage, cout) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..blocks_per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                if stage == 2 && b + 1 == blocks_per_stage {
                    last = (cin, cout, stride);
                } else {
                    trunk.push(BasicBlock::new(cin, cout, stride, sc, device));
                }
                cin = cout;
            }
        }
        let (bin, bout, stride) = last;
        let branches = (0..2)
            .map(|_| BasicBlock::new(bin, bout, stride, sc, device))
            .collect();
        Self {
            stem: conv(channels, 16, 3, 1, sc, device),
            stem_bn: BatchNorm::new(16, device),
            trunk,
            branches,
        }
    }

    fn shared(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = relu(self.stem_bn.forward(self.stem.forward(x)));
        for block in &self.trunk {
            x = block.forward(x);
        }
        x
    }

    fn pool(x: Tensor<4>) -> Tensor<2> {
        let x: Tensor<3> = x.flatten(2, 3);
        x.mean_dim(2).flatten(1, 2)
    }

    /// Pooled features `[N, 64]` of `x` through the shared blocks and branch `branch` alone
    /// (BBN's `feature_cb` / `feature_rb`).
    pub fn branch_features(&self, x: Tensor<4>, branch: usize) -> Tensor<2> {
        let block = &self.branches[branch.min(self.branches.len() - 1)];
        Self::pool(block.forward(self.shared(x)))
    }

    /// Both branches' pooled features of the same images side by side, `[N, 128]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let t = self.shared(x);
        let both = self
            .branches
            .iter()
            .map(|b| Self::pool(b.forward(t.clone())))
            .collect();
        Tensor::cat(both, 1)
    }
}
