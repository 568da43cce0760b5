//! The CIFAR ResNets of He et al. (2016, Sec. 4.2) used throughout the long-tailed literature
//! (ResNet-32 in LDAM-DRW, Balanced Softmax, Logit Adjustment): a 3x3 stem of 16 maps, three
//! stages of `n` basic blocks with 16/32/64 maps (stride 1/2/2), BatchNorm, global average pool.
//! Down-sampling shortcuts are 1x1 convolutions with BatchNorm (option B); `bench/reference.py`
//! builds the same network in PyTorch.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};

use super::batch_norm::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

fn conv3x3(cin: usize, cout: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// A 1x1 projection shortcut used when a block changes resolution or width.
#[derive(Module, Debug)]
pub struct Shortcut {
    conv: Conv2d,
    bn: BatchNorm,
}

/// Two 3x3 conv-BN layers with an identity or projection shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<Shortcut>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || cin != cout).then(|| Shortcut {
            conv: Conv2dConfig::new([cin, cout], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            bn: BatchNorm::new(cout, device),
        });
        Self {
            conv1: conv3x3(cin, cout, stride, device),
            bn1: BatchNorm::new(cout, device),
            conv2: conv3x3(cout, cout, 1, device),
            bn2: BatchNorm::new(cout, device),
            shortcut,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = self.bn2.forward(self.conv2.forward(out));
        let short = match &self.shortcut {
            Some(s) => s.bn.forward(s.conv.forward(x)),
            None => x,
        };
        relu(out + short)
    }
}

/// CIFAR ResNet-(6n+2).
#[derive(Module, Debug)]
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
}

impl ResNet {
    /// Width of the pooled feature vector.
    pub const FEATURES: usize = 64;

    pub fn new(channels: usize, blocks_per_stage: usize, device: &Device) -> Self {
        let mut blocks = Vec::with_capacity(3 * blocks_per_stage);
        let mut cin = 16;
        for (stage, cout) in [16, 32, 64].into_iter().enumerate() {
            for b in 0..blocks_per_stage {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(cin, cout, stride, device));
                cin = cout;
            }
        }
        Self {
            stem: conv3x3(channels, 16, 1, device),
            stem_bn: BatchNorm::new(16, device),
            blocks,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem_bn.forward(self.stem.forward(x)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        // Global average pooling over H and W.
        let x: Tensor<3> = x.flatten(2, 3);
        x.mean_dim(2).flatten(1, 2)
    }
}
