//! The heads of contrastive representation learning beside the classifier: a projection head
//! that maps the backbone's features of every augmented view to normalized embeddings, and a
//! class-center head that maps the classifier's weights into the same space (BCL, Zhu et al.,
//! CVPR 2022, FlamieZhu/Balanced-Contrastive-Learning `BCLModel`: `head` and `head_fc`, each
//! `Linear(d, d) - BatchNorm1d(d) - ReLU - Linear(d, p)` on the backbone's width `d`). The
//! classifier plugin that wants them (`contrastive`) says how wide the embeddings are and how
//! many augmented views each image gets; models without them train as before.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::ModelError;
use super::batch_norm::BatchNorm;
use super::head::l2_normalize_rows;

/// What a contrastive classifier adds to the model, as a spec stores it (`model.contrast`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContrastDesign {
    /// Width `p` of the embeddings (BCL: 128 on CIFAR, 1024 on ImageNet-LT).
    pub dim: usize,
    /// Augmented views of each image besides the classification view, which alone gives the
    /// logits (BCL: 2, whose embeddings the contrastive loss compares).
    pub views: usize,
    /// Whether the class-center head maps each class's classifier weight to an embedding.
    pub centers: bool,
}

impl ContrastDesign {
    /// The most augmented views an image gets (each is a full pass through the backbone).
    pub const MAX_VIEWS: usize = 4;

    /// Images per sample in a training batch: the classification view and the others.
    pub fn batch_views(&self) -> usize {
        1 + self.views
    }
}

/// `Linear(d, d) - BatchNorm1d(d) - ReLU - Linear(d, p)` (PyTorch's `nn.Linear` default
/// initialization; BatchNorm over the rows it is given).
#[derive(Module, Debug)]
pub struct Mlp2 {
    pub fc1: Linear,
    pub bn: BatchNorm,
    pub fc2: Linear,
}

impl Mlp2 {
    fn new(d: usize, p: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(d, d).init(device),
            bn: BatchNorm::new(d, device),
            fc2: LinearConfig::new(d, p).init(device),
        }
    }

    /// `[rows, d]` to `[rows, p]` (not normalized).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(relu(self.bn.forward(self.fc1.forward(x))))
    }
}

/// The projection head and, when asked, the class-center head.
#[derive(Module, Debug)]
pub struct ContrastHeads {
    pub projection: Mlp2,
    pub centers: Option<Mlp2>,
    /// Augmented views per image besides the classification view.
    pub views: usize,
}

impl ContrastHeads {
    /// Heads over backbone features of width `features`.
    pub fn new(
        design: ContrastDesign,
        features: usize,
        device: &Device,
    ) -> Result<Self, ModelError> {
        if design.dim == 0 {
            return Err(ModelError::Invalid {
                key: "contrast.dim",
                message: "the embeddings need at least one dimension".into(),
            });
        }
        if !(1..=ContrastDesign::MAX_VIEWS).contains(&design.views) {
            return Err(ModelError::Invalid {
                key: "contrast.views",
                message: format!(
                    "1 to {} augmented views, got {}",
                    ContrastDesign::MAX_VIEWS,
                    design.views
                ),
            });
        }
        Ok(Self {
            projection: Mlp2::new(features, design.dim, device),
            centers: design
                .centers
                .then(|| Mlp2::new(features, design.dim, device)),
            views: design.views,
        })
    }

    /// Unit-norm embeddings `[V, N, p]` of the features `[V x N, d]` of `V` views of `N`
    /// images, view by view (the first view's rows first). BatchNorm normalizes over all the
    /// views' rows at once, as BCL's one forward pass of the concatenated views does.
    pub fn embeddings(&self, features: Tensor<2>, views: usize) -> Tensor<3> {
        let [rows, _] = features.dims();
        let n = rows / views.max(1);
        let z = l2_normalize_rows(self.projection.forward(features));
        let p = z.dims()[1];
        z.reshape([views, n, p])
    }

    /// Unit-norm class centers `[C, p]` from the classifier's weights `[C, d]` (BatchNorm over
    /// the classes), when the model has the center head.
    pub fn centers(&self, class_weights: Tensor<2>) -> Option<Tensor<2>> {
        self.centers
            .as_ref()
            .map(|h| l2_normalize_rows(h.forward(class_weights)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn embeddings_and_centers_are_unit_vectors_of_the_design_width() {
        let device = Device::default();
        let design = ContrastDesign {
            dim: 5,
            views: 2,
            centers: true,
        };
        let heads = ContrastHeads::new(design, 7, &device).unwrap();
        let f = Tensor::<2>::random([3 * 4, 7], Distribution::Default, &device);
        let e = heads.embeddings(f, 3);
        assert_eq!(e.dims(), [3, 4, 5]);
        let norms: Vec<f32> = e
            .powi_scalar(2)
            .sum_dim(2)
            .into_data()
            .iter::<f32>()
            .collect();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let w = Tensor::<2>::random([6, 7], Distribution::Default, &device);
        assert_eq!(heads.centers(w).unwrap().dims(), [6, 5]);
        let plain = ContrastHeads::new(
            ContrastDesign {
                centers: false,
                ..design
            },
            7,
            &device,
        )
        .unwrap();
        assert!(plain.centers(Tensor::zeros([6, 7], &device)).is_none());
    }

    #[test]
    fn a_design_out_of_range_is_refused() {
        let device = Device::default();
        for (dim, views) in [(0, 2), (8, 0), (8, ContrastDesign::MAX_VIEWS + 1)] {
            let d = ContrastDesign {
                dim,
                views,
                centers: true,
            };
            assert!(ContrastHeads::new(d, 4, &device).is_err(), "{d:?}");
        }
    }
}
