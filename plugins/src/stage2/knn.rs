//! A k-nearest-neighbour classifier on the frozen stage-1 features (the survey's classifier
//! design, Sec. 3.3.3, beside NCM): after stage 1 the classifier is set aside, without training,
//! and an image goes to the classes of its nearest training images.
//!
//! The vote is Wu et al.'s weighted kNN ("Unsupervised Feature Learning via Non-Parametric
//! Instance Discrimination", CVPR 2018, Sec. 3.5), the one self-supervised learning evaluates
//! features with (facebookresearch/dino `eval_knn.py` `knn_classifier`): on L2-normalized
//! features (evaluation mode, no augmentation) the cosine similarities `s_j` to every training
//! image, its `k` most similar, and `score_c = sum_{j in top k, y_j = c} exp(s_j / T)`, `T` 0.07;
//! `k` 20, which DINO (Caron et al., ICCV 2021, Sec. 4.1) found best of 10, 20, 100 and 200.
//!
//! Determinism: the top `k` are the largest `(s_j, -j)` (an equal similarity goes to the earlier
//! training image, where PyTorch's `topk` leaves the order open), and the prediction is the
//! arg-max of the scores, ties to the lower class (as every evaluation here). The logits the
//! run reports are `ln(score_c / sum score)`, floored at `ln 1e-30` for a class without a vote,
//! so that softmax (calibration) gives the vote shares.

use burn::tensor::Tensor;
use thiserror::Error;

use super::{Stage2Method, Stage2Plan};
use crate::registry::Params;

/// The stage-2 method: `Stage2Plan::NearestNeighbours`.
#[derive(Debug, Clone)]
pub struct Knn {
    k: usize,
    temperature: f32,
}

impl Knn {
    pub fn from_params(p: &Params) -> Self {
        Self {
            k: p.get("k") as usize,
            temperature: p.get("temperature") as f32,
        }
    }
}

impl Stage2Method for Knn {
    fn shares_stage1(&self) -> bool {
        true
    }

    fn plan(&self) -> Stage2Plan {
        Stage2Plan::NearestNeighbours {
            k: self.k,
            temperature: self.temperature,
        }
    }
}

/// Why a kNN classifier cannot be built or applied.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KnnError {
    #[error("kNN: {features} training features but {labels} labels")]
    Count { features: usize, labels: usize },
    #[error("kNN: training label {label} of {classes} classes")]
    Label { label: u32, classes: usize },
    #[error(
        "kNN: needs training images, k > 0 and a temperature > 0 (images {n}, k {k}, T {temperature})"
    )]
    Parameters {
        n: usize,
        k: usize,
        temperature: f32,
    },
    #[error("kNN: reading the similarities: {0}")]
    Data(String),
}

/// The smallest vote share a logit reports (`ln` of it for a class without a vote).
const FLOOR: f64 = 1e-30;
/// Queries compared with the whole training set at once (bounds the `[rows, N]` similarities).
const CHUNK: usize = 256;

/// The training set's L2-normalized features and labels, and the vote.
#[derive(Debug, Clone)]
pub struct KnnVote {
    /// `[N, D]`, unit rows, on the device the features were computed on.
    train: Tensor<2>,
    labels: Vec<u32>,
    classes: usize,
    k: usize,
    temperature: f64,
}

impl KnnVote {
    /// From the training features `[N, D]` (any norm) and their labels (`< classes`).
    pub fn new(
        train: Tensor<2>,
        labels: &[u32],
        classes: usize,
        k: usize,
        temperature: f32,
    ) -> Result<Self, KnnError> {
        let [n, _] = train.dims();
        if n != labels.len() {
            return Err(KnnError::Count {
                features: n,
                labels: labels.len(),
            });
        }
        if let Some(&label) = labels.iter().find(|&&y| y as usize >= classes) {
            return Err(KnnError::Label { label, classes });
        }
        if n == 0 || k == 0 || !(temperature > 0.0 && temperature.is_finite()) {
            return Err(KnnError::Parameters { n, k, temperature });
        }
        Ok(Self {
            train: unit_rows(train),
            labels: labels.to_vec(),
            classes,
            k: k.min(n),
            temperature: f64::from(temperature),
        })
    }

    /// Row-major logits `[M, C]` of the query features `[M, D]`: `ln` of each class' share of
    /// the weighted vote of the query's `k` nearest training images.
    pub fn logits(&self, queries: Tensor<2>) -> Result<Vec<f32>, KnnError> {
        let [m, _] = queries.dims();
        let queries = unit_rows(queries.to_device(&self.train.device()));
        let mut out = Vec::with_capacity(m * self.classes);
        let mut start = 0;
        while start < m {
            let rows = CHUNK.min(m - start);
            let sims = queries
                .clone()
                .narrow(0, start, rows)
                .matmul(self.train.clone().transpose());
            let sims: Vec<f32> = sims
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| KnnError::Data(format!("{e:?}")))?;
            for row in sims.chunks_exact(self.labels.len()) {
                out.extend(self.vote(row));
            }
            start += rows;
        }
        Ok(out)
    }

    /// One query's logits from its similarities to every training image.
    fn vote(&self, sims: &[f32]) -> Vec<f32> {
        let mut order: Vec<u32> = (0..sims.len() as u32).collect();
        let nearer = |a: &u32, b: &u32| {
            sims[*b as usize]
                .total_cmp(&sims[*a as usize])
                .then(a.cmp(b))
        };
        if self.k < order.len() {
            order.select_nth_unstable_by(self.k - 1, nearer);
            order.truncate(self.k);
        }
        let mut score = vec![0.0f64; self.classes];
        for &j in &order {
            let s = f64::from(sims[j as usize]);
            score[self.labels[j as usize] as usize] += (s / self.temperature).exp();
        }
        let total: f64 = score.iter().sum();
        score
            .iter()
            .map(|&v| ((v / total).max(FLOOR)).ln() as f32)
            .collect()
    }
}

/// `x / max(||x||, 1e-12)` row by row (PyTorch's `F.normalize`).
fn unit_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};
    use serde::Deserialize;

    use super::*;

    const FIXTURE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/knn.json"
    ));

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        case: String,
        n: usize,
        m: usize,
        d: usize,
        classes: usize,
        k: usize,
        temperature: f32,
        train: Vec<f32>,
        labels: Vec<u32>,
        queries: Vec<f32>,
        logits: Vec<f64>,
    }

    /// bench/fixtures/knn.py: numpy's weighted vote (checked there against DINO's
    /// `knn_classifier`), ties at the k-th place to the earlier training image.
    #[test]
    fn the_vote_matches_numpy_on_fixed_features() {
        let fixture: Fixture = serde_json::from_str(FIXTURE).expect("knn.json parses");
        assert_eq!(fixture.cases.len(), 4);
        let device = Device::default();
        for c in &fixture.cases {
            let train =
                Tensor::<2>::from_data(TensorData::new(c.train.clone(), [c.n, c.d]), &device);
            let queries =
                Tensor::<2>::from_data(TensorData::new(c.queries.clone(), [c.m, c.d]), &device);
            let vote = KnnVote::new(train, &c.labels, c.classes, c.k, c.temperature).unwrap();
            let got = vote.logits(queries).unwrap();
            assert_eq!(got.len(), c.m * c.classes, "{}", c.case);
            for (i, (&g, &w)) in got.iter().zip(&c.logits).enumerate() {
                assert!(
                    (f64::from(g) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{}[{i}]: got {g}, want {w}",
                    c.case
                );
            }
        }
    }

    #[test]
    fn a_bad_index_is_refused() {
        let device = Device::default();
        let f = || {
            Tensor::<2>::from_data(
                TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0], [2, 2]),
                &device,
            )
        };
        assert!(
            KnnVote::new(f(), &[0], 2, 1, 0.07).is_err(),
            "one label for two images"
        );
        assert!(
            KnnVote::new(f(), &[0, 2], 2, 1, 0.07).is_err(),
            "label 2 of 2 classes"
        );
        assert!(KnnVote::new(f(), &[0, 1], 2, 0, 0.07).is_err(), "k = 0");
        assert!(KnnVote::new(f(), &[0, 1], 2, 1, 0.0).is_err(), "T = 0");
        let vote = KnnVote::new(f(), &[0, 1], 2, 1, 0.07).unwrap();
        let z = vote
            .logits(Tensor::<2>::from_data(
                TensorData::new(vec![0.1f32, 3.0], [1, 2]),
                &device,
            ))
            .unwrap();
        assert!(z[1] > z[0], "the nearest image is class 1's: {z:?}");
    }
}
