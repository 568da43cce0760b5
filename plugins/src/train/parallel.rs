//! Data-parallel training of one run on all its devices (`resources.gpus = N`), as PyTorch's
//! `DistributedDataParallel` computes it: the global batch is cut into N contiguous shards
//! (sizes differ by at most one), replica i runs forward and backward on shard i on device i,
//! and the gradients are all-reduced into replica 0's device, each weighted by its shard's share
//! of the batch (`n_i / n`: DDP's plain average for equal shards, and for a ragged last batch
//! still the gradient of the global mean loss). One optimizer step then updates the one model,
//! which every replica forks again at the next step, so replicas never drift.
//!
//! BatchNorm follows DDP's default (`broadcast_buffers=True`, no SyncBatchNorm): each replica
//! normalizes its shard with its shard's statistics, and the running statistics are replica 0's
//! (rank 0's buffers are what DDP broadcasts and what a checkpoint of it holds): the other
//! replicas' updates are suppressed ([`crate::models::batch_norm::without_running_updates`]).
//!
//! The all-reduce moves each replica's gradients to device 0 (`to_device`) and sums them: a
//! reduce to the root, not NCCL's ring, since Burn 0.22's collectives (`burn::tensor::distributed`)
//! exist only for its CubeCL backends and cauda's GPU backend is `tch`. Replicas past the first
//! run on threads of their own, one per device, so N GPUs compute at once; the first runs on the
//! training thread.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::TrainError;
use super::batches::Batch;
use super::teacher::Teacher;
use crate::losses::{self, Loss};
use crate::models::Classifier;
use crate::models::batch_norm::without_running_updates;

/// `n` samples cut into `parts` contiguous shards, the first `n % parts` one longer (as
/// `torch.chunk` would not: it makes the last shard the short one, which changes no sum).
pub fn shards(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Labels as the loss' `[N]` int tensor.
pub(crate) fn labels_tensor(labels: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [labels.len()]), device)
}

/// A batch as the loss step takes it: normalized pixels `[V x N, C, H, W]` (the `V` views of
/// `N` images, view by view; `V = 1` but for a contrastive model), labels and, when mixed, the
/// partner labels and weights.
pub(crate) struct BatchTensors<'a> {
    pub pixels: Vec<f32>,
    pub shape: [usize; 4],
    pub labels: &'a [u32],
    pub mixed: Option<(&'a [u32], &'a [f32])>,
    /// The second sampler stream's batch, when the stage has one.
    pub second: Option<SecondTensors>,
}

/// The second stream's images (normalized, one view, `[N, C, H, W]` as the main view) and
/// labels.
pub(crate) struct SecondTensors {
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
}

/// The training loss of one batch through `model` (features, then the head), the one way the
/// loop and every data-parallel shard build a loss [`losses::Step`]. A contrastive model
/// passes every view through the backbone at once (one BatchNorm over all of them, as BCL's
/// concatenated views are), takes its logits from the classification view and gives the loss
/// every view's embeddings and the class centers. With a second sampler stream, the loss also
/// gets that batch's logits ([`losses::SecondStream`]): a bilateral model (BBN) passes the main
/// batch through its conventional branch and the second batch through its re-balancing branch,
/// one forward each (each its own BatchNorm statistics, as BBN's two calls), and the head sees
/// each branch's features doubled beside zeros; any other model gives its own logits of them.
pub(crate) fn batch_loss(
    model: &Classifier,
    teacher: Option<&Teacher>,
    loss: &dyn Loss,
    batch: BatchTensors<'_>,
    (epoch, step): (usize, usize),
    draws: losses::StepDraws,
    device: &Device,
) -> Result<Tensor<1>, TrainError> {
    let n = batch.labels.len();
    let views = batch.shape[0] / n.max(1);
    let [_, c, h, w] = batch.shape;
    let x = Tensor::<4>::from_data(TensorData::new(batch.pixels, batch.shape), device);
    let mix = batch.mixed.map(|(b, lam)| losses::Mixup {
        labels_b: labels_tensor(b, device),
        lam: Tensor::<1>::from_data(TensorData::new(lam.to_vec(), [n]), device),
    });
    let second = batch.second.map(|s| {
        let n2 = s.labels.len();
        let x2 = Tensor::<4>::from_data(TensorData::new(s.pixels, [n2, c, h, w]), device);
        (x2, labels_tensor(&s.labels, device))
    });
    if let (Some(m), Some((x2, labels2))) = (model.bilateral(), &second) {
        use crate::models::BilateralResNet as B;
        let f_c = m.branch_features(x.clone(), B::CONVENTIONAL);
        let f_r = m.branch_features(x2.clone(), B::REBALANCING);
        let (z_c, z_r) = model.head.bilateral_logits(f_c.clone(), f_r);
        let zeros = f_c.zeros_like();
        let features = Tensor::cat(vec![f_c.mul_scalar(2.0), zeros], 1);
        let teacher = teacher.map(|t| t.logits(x));
        let step = losses::Step {
            logits: z_c,
            features: Some(features),
            experts: None,
            labels: labels_tensor(batch.labels, device),
            mix,
            epoch,
            step,
            teacher,
            embeddings: None,
            centers: None,
            draws,
            second: Some(losses::SecondStream {
                logits: z_r,
                labels: labels2.clone(),
            }),
        };
        return Ok(losses::step_loss(loss, step)?);
    }
    let second = second.map(|(x2, labels)| losses::SecondStream {
        logits: model.forward(x2),
        labels,
    });
    let all = model.features(x.clone());
    let (features, embeddings, centers) = match &model.contrast {
        Some(heads) => {
            let first = all.clone().narrow(0, 0, n);
            let embeddings = heads.embeddings(all, views);
            (
                first,
                Some(embeddings),
                heads.centers(model.head.weight.val()),
            )
        }
        None => (all, None, None),
    };
    let teacher = teacher.map(|t| t.logits(if views > 1 { x.narrow(0, 0, n) } else { x }));
    let experts = model.head.expert_logits(features.clone());
    let logits = match &experts {
        // The model's output (`Head::forward`), from the experts' logits computed once.
        Some(z) => z.clone().mean_dim(0).squeeze_dim(0),
        None => model.head.forward(features.clone()),
    };
    let step = losses::Step {
        logits,
        features: Some(features),
        experts,
        labels: labels_tensor(batch.labels, device),
        mix,
        epoch,
        step,
        teacher,
        embeddings,
        centers,
        draws,
        second,
    };
    Ok(losses::step_loss(loss, step)?)
}

/// One replica's loss on one shard and the gradients of its parameters.
#[allow(clippy::too_many_arguments)]
fn shard_grads(
    model: &Classifier,
    teacher: Option<&Teacher>,
    batch: &Batch,
    range: std::ops::Range<usize>,
    shape: [usize; 3],
    loss: &dyn Loss,
    (epoch, step, key): (usize, usize, u64),
    device: &Device,
) -> Result<(GradientsParams, Tensor<1>), TrainError> {
    let [c, h, w] = shape;
    let per = c * h * w;
    let n = range.len();
    // The shard's images in every view (the batch holds its views one after the other).
    let all = batch.len();
    let views = batch.views.max(1);
    let mut px = Vec::with_capacity(views * n * per);
    for v in 0..views {
        let at = v * all;
        px.extend_from_slice(&batch.pixels[(at + range.start) * per..(at + range.end) * per]);
    }
    let mixed = batch
        .mixed
        .as_ref()
        .map(|(b, lam)| (&b[range.clone()], &lam[range.clone()]));
    // The second stream's batch is cut into the same shards as the main one.
    let second = batch.second.as_ref().map(|s| SecondTensors {
        pixels: s.pixels[range.start * per..range.end * per].to_vec(),
        labels: s.labels[range.clone()].to_vec(),
    });
    let shard = BatchTensors {
        pixels: px,
        shape: [views * n, c, h, w],
        labels: &batch.labels[range.clone()],
        mixed,
        second,
    };
    // The shard draws the noise of its own rows of the global batch.
    let draws = losses::StepDraws {
        key,
        first_row: range.start,
    };
    let loss = batch_loss(model, teacher, loss, shard, (epoch, step), draws, device)?;
    let grads = GradientsParams::from_grads(loss.backward(), model);
    Ok((grads, loss.detach()))
}

/// The gradients of the global batch's loss on `devices` (the first is `model`'s), and that
/// loss (the shard-weighted mean) on the first device. Each shard's loss is computed on that
/// shard alone, as each rank of PyTorch's DistributedDataParallel does (so a whole-batch loss
/// such as LADE estimates per shard), from several threads at once. `at` is the stage's
/// (epoch, step, draw key); each shard draws a stochastic loss' noise for its own rows.
pub fn data_parallel_grads(
    model: &Classifier,
    teacher: Option<&Teacher>,
    devices: &[Device],
    batch: &Batch,
    shape: [usize; 3],
    loss: &dyn Loss,
    at: (usize, usize, u64),
) -> Result<(GradientsParams, Tensor<1>), TrainError> {
    let n = batch.len();
    let ranges = shards(n, devices.len());
    // Replica 0 runs on the calling thread: Burn keeps a module's running-state updates per
    // thread and folds a thread's last update in when that same thread next reads it, so the
    // model's BatchNorm statistics must be fed from the one thread that trains every step (a
    // new thread per step would leave each update unread until an average of all of them).
    let results: Vec<Result<(GradientsParams, Tensor<1>), TrainError>> = std::thread::scope(|s| {
        let others: Vec<_> = ranges
            .iter()
            .cloned()
            .zip(devices)
            .skip(1)
            .map(|(range, device)| {
                s.spawn(move || {
                    let replica = model.clone().fork(device);
                    let teacher = teacher.map(|t| t.on(device));
                    without_running_updates(|| {
                        shard_grads(
                            &replica,
                            teacher.as_ref(),
                            batch,
                            range,
                            shape,
                            loss,
                            at,
                            device,
                        )
                    })
                })
            })
            .collect();
        let first = shard_grads(
            model,
            teacher,
            batch,
            ranges[0].clone(),
            shape,
            loss,
            at,
            &devices[0],
        );
        std::iter::once(first)
            .chain(others.into_iter().map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(TrainError::Record(
                        "a data-parallel replica panicked".into(),
                    ))
                })
            }))
            .collect()
    });
    let mut parts = Vec::with_capacity(results.len());
    for r in results {
        parts.push(r?);
    }
    let root = &devices[0];
    let weights: Vec<f32> = ranges
        .iter()
        .map(|r| r.len() as f32 / n.max(1) as f32)
        .collect();
    let mut total_loss: Option<Tensor<1>> = None;
    let mut grads = Vec::with_capacity(parts.len());
    for ((g, l), &w) in parts.into_iter().zip(&weights) {
        let l = l.to_device(root).mul_scalar(w);
        total_loss = Some(match total_loss {
            None => l,
            Some(t) => t + l,
        });
        grads.push(g);
    }
    let mut reduce = AllReduce {
        replicas: grads,
        weights,
        root: root.clone(),
        out: GradientsParams::new(),
    };
    model.visit(&mut reduce);
    let loss = total_loss.ok_or_else(|| TrainError::Record("an empty batch".into()))?;
    Ok((reduce.out, loss))
}

/// Sums every parameter's weighted gradients from all replicas on the root device.
struct AllReduce {
    replicas: Vec<GradientsParams>,
    weights: Vec<f32>,
    root: Device,
    out: GradientsParams,
}

impl ModuleVisitor for AllReduce {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut sum: Option<Tensor<D>> = None;
        for (g, &w) in self.replicas.iter_mut().zip(&self.weights) {
            if let Some(t) = g.remove::<D>(param.id) {
                let t = t.to_device(&self.root).mul_scalar(w);
                sum = Some(match sum {
                    None => t,
                    Some(s) => s + t,
                });
            }
        }
        if let Some(s) = sum {
            self.out.register::<D>(param.id, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shards;

    #[test]
    fn shards_cover_the_batch_in_order_and_differ_by_one_at_most() {
        assert_eq!(shards(10, 2), [0..5, 5..10]);
        assert_eq!(shards(11, 3), [0..4, 4..8, 8..11]);
        assert_eq!(shards(2, 4), [0..1, 1..2]);
        assert_eq!(shards(7, 1).len(), 1);
        assert_eq!(shards(7, 1)[0], 0..7);
    }
}
