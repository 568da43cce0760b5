//! SADE's test-time self-supervised aggregation as what it is once the model is frozen: an
//! optimisation of one scalar per expert over the experts' logits of two augmented views of each
//! image, computed once and cached (`train/test_time.rs`), so eleven fits cost no forward pass.
//! The loss, its gradient and PyTorch's SGD are written out in f64 here and checked against the
//! reference's own optimiser on fixed logits (`bench/fixtures/sade_aggregation.py`).

use crate::spec::TestTimeAggregation;

/// Every image's experts' logits of one view, image-major: `values[(i * E + e) * C + c]`.
#[derive(Debug, Clone, Copy)]
pub struct ExpertLogits<'a> {
    pub values: &'a [f32],
    pub experts: usize,
    pub classes: usize,
}

impl ExpertLogits<'_> {
    /// `sum_e a_e z_{i,e}`: image `i`'s logits under the aggregation weights `a`, into `out`.
    pub fn aggregate_into(&self, i: usize, a: &[f64], out: &mut [f64]) {
        let (e, c) = (self.experts, self.classes);
        out.fill(0.0);
        let image = &self.values[i * e * c..(i + 1) * e * c];
        for (z, &w) in image.chunks_exact(c).zip(a) {
            for (o, &v) in out.iter_mut().zip(z) {
                *o += w * f64::from(v);
            }
        }
    }

    /// Expert `e`'s logits of image `i`.
    fn expert(&self, i: usize, e: usize) -> &[f32] {
        let c = self.classes;
        let at = (i * self.experts + e) * c;
        &self.values[at..at + c]
    }
}

/// `softmax(x)`, shifted by its maximum.
pub fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|v| v / sum).collect()
}

/// `torch.nn.CosineSimilarity(eps=1e-6)`'s eps: each norm is clamped to it (out of reach for
/// probability vectors, whose norm is at least `1/sqrt(C)`).
const COS_EPS: f64 = 1e-6;

/// SADE's loss on the images `batch` under the raw weights `w`: `-mean cos(softmax(u_0),
/// softmax(u_1))` with `u_v = sum_e softmax(w)_e z_{v,e}`, and its gradient in `w`.
pub fn stability_loss(views: [ExpertLogits<'_>; 2], batch: &[usize], w: &[f64]) -> (f64, Vec<f64>) {
    let a = softmax(w);
    let experts = a.len();
    let classes = views[0].classes;
    let mut loss = 0.0;
    // d loss / d a_e, summed over the batch.
    let mut grad_a = vec![0.0; experts];
    let mut u = vec![0.0; classes];
    for &i in batch {
        let p: [Vec<f64>; 2] = std::array::from_fn(|v| {
            views[v].aggregate_into(i, &a, &mut u);
            softmax(&u)
        });
        let norm = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>().sqrt().max(COS_EPS);
        let (n0, n1) = (norm(&p[0]), norm(&p[1]));
        let dot: f64 = p[0].iter().zip(&p[1]).map(|(x, y)| x * y).sum();
        let cos = dot / (n0 * n1);
        loss -= cos;
        // d cos / d p_v, then through the softmax: h_v = p_v (g_v - p_v . g_v) = d cos / d u_v.
        for (v, (own, nv, other)) in [(&p[0], n0, &p[1]), (&p[1], n1, &p[0])]
            .into_iter()
            .enumerate()
        {
            let g: Vec<f64> = own
                .iter()
                .zip(other.iter())
                .map(|(x, y)| y / (n0 * n1) - cos * x / (nv * nv))
                .collect();
            let pg: f64 = own.iter().zip(&g).map(|(x, y)| x * y).sum();
            for (e, ge) in grad_a.iter_mut().enumerate() {
                let z = views[v].expert(i, e);
                let d: f64 = own
                    .iter()
                    .zip(&g)
                    .zip(z)
                    .map(|((pc, gc), &zc)| pc * (gc - pg) * f64::from(zc))
                    .sum();
                *ge -= d;
            }
        }
    }
    let n = batch.len().max(1) as f64;
    let grad_a: Vec<f64> = grad_a.into_iter().map(|g| g / n).collect();
    // Through softmax(w): d/dw_j = a_j (g_j - sum_e a_e g_e).
    let mean: f64 = a.iter().zip(&grad_a).map(|(x, g)| x * g).sum();
    let grad_w = a.iter().zip(&grad_a).map(|(x, g)| x * (g - mean)).collect();
    (loss / n, grad_w)
}

/// One distribution's fit: the raw weights `w` (PyTorch's `aggregation_weight`, `1/E` at
/// first), SGD's momentum buffer, the epochs done and whether the early stop ended it.
#[derive(Debug, Clone)]
pub struct AggregationFit {
    settings: TestTimeAggregation,
    w: Vec<f64>,
    momentum: Option<Vec<f64>>,
    epochs: usize,
    stopped: bool,
}

impl AggregationFit {
    pub fn new(experts: usize, settings: &TestTimeAggregation) -> Self {
        Self {
            settings: settings.clone(),
            w: vec![1.0 / experts as f64; experts],
            momentum: None,
            epochs: 0,
            stopped: false,
        }
    }

    /// The aggregation weights `softmax(w)`.
    pub fn weights(&self) -> Vec<f64> {
        softmax(&self.w)
    }

    /// Epochs trained.
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Whether the fit is over: its epochs done, or a weight fell below `min_weight`.
    pub fn done(&self) -> bool {
        self.stopped || self.epochs >= self.settings.epochs
    }

    /// One epoch over the images `order` (this epoch's shuffled order) in batches of
    /// `batch_size`, the last one shorter, one step each (SADE's `test_training`), then the early
    /// stop: the reference rounds the weights to two decimals (`np.round`, half to even) and
    /// stops when one of them is below `min_weight`. Nothing when [`Self::done`].
    pub fn epoch(&mut self, views: [ExpertLogits<'_>; 2], order: &[usize]) {
        if self.done() {
            return;
        }
        for batch in order.chunks(self.settings.batch_size.max(1)) {
            let (_, grad) = stability_loss(views, batch, &self.w);
            self.step(&grad);
        }
        self.epochs += 1;
        let min = self.settings.min_weight;
        self.stopped = self
            .weights()
            .iter()
            .any(|&a| (a * 100.0).round_ties_even() / 100.0 < min);
    }

    /// `torch.optim.SGD` (dampening 0): `d = g + wd w`; `b = d` at the first step, else
    /// `b = m b + d`; `d = d + m b` with Nesterov, else `b`; `w -= lr d`.
    fn step(&mut self, grad: &[f64]) {
        let s = &self.settings;
        let d: Vec<f64> = grad
            .iter()
            .zip(&self.w)
            .map(|(g, w)| g + s.weight_decay * w)
            .collect();
        let step = if s.momentum > 0.0 {
            let buf = match self.momentum.take() {
                None => d.clone(),
                Some(b) => b.iter().zip(&d).map(|(b, d)| s.momentum * b + d).collect(),
            };
            let step = if s.nesterov {
                d.iter()
                    .zip(&buf)
                    .map(|(d, b)| d + s.momentum * b)
                    .collect()
            } else {
                buf.clone()
            };
            self.momentum = Some(buf);
            step
        } else {
            d
        };
        for (w, d) in self.w.iter_mut().zip(step) {
            *w -= s.lr * d;
        }
    }
}

#[cfg(test)]
#[path = "aggregation_tests.rs"]
mod tests;
