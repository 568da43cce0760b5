//! Checks SADE's test-time aggregation against the reference's own optimiser: the values below
//! are printed by `bench/fixtures/sade_aggregation.py` (Vanint/SADE-AgnosticLT's
//! `test_training` re-typed in float64 PyTorch: its `CosineSimilarity` loss through autograd and
//! `torch.optim.SGD`), on the expert logits of the formula both sides compute, rounded to
//! float32 as cauda caches them. The loss and gradient of one batch, then each case's weights
//! `softmax(w)` and raw `w` after every epoch, and where the early stop ends it.

use super::*;

/// Pasted from `bench/fixtures/sade_aggregation.py`'s output.
mod pasted {
    // one batch (order(0)[..16]) at w = [0.2, 0.5, -0.3]
    pub const BATCH_LOSS: f64 = -0.8078019286539517;
    pub const BATCH_GRAD: [f64; 3] = [
        -0.05590163822209208,
        0.02590651957940394,
        0.02999511864268813,
    ];
    // REFERENCE: {'lr': 0.1, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.0005, 'batch': 16, 'epochs': 4, 'min_weight': 0.05}, 4 epochs
    pub const REFERENCE: [[[f64; 3]; 2]; 4] = [
        [
            [
                0.35026110913650516,
                0.32865255757339595,
                0.32108633329009895,
            ],
            [0.3833465036424576, 0.31966873793125716, 0.29637763922250926],
        ],
        [
            [0.3842873534775966, 0.3206726580540921, 0.2950399884683113],
            [0.4811855900631704, 0.3002158469600326, 0.21690590225966985],
        ],
        [
            [0.43371717710587043, 0.3091833338465167, 0.2570994890476129],
            [0.6194321616541725, 0.2809739200108745, 0.09650263253637911],
        ],
        [
            [0.5051984777101477, 0.2875359854125545, 0.2072655368772978],
            [
                0.8166198850914903,
                0.25301652691875876,
                -0.07433073409419667,
            ],
        ],
    ];
    // EARLY_STOP: {'lr': 0.44, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 0.0005, 'batch': 16, 'epochs': 8, 'min_weight': 0.05}, 5 epochs
    pub const EARLY_STOP: [[[f64; 3]; 2]; 5] = [
        [
            [0.4140839703657444, 0.30768473412496355, 0.2782312955092921],
            [0.5639796949748979, 0.266986582989486, 0.1663636807526205],
        ],
        [
            [0.5780749219102285, 0.23986383635819405, 0.1820612417315775],
            [
                1.0091852183044407,
                0.12955314918170374,
                -0.14617514114334107,
            ],
        ],
        [
            [0.7523281149367306, 0.1497067575558289, 0.09796512750744042],
            [1.5464971937659169, -0.0679969270165881, -0.4920637844938047],
        ],
        [
            [0.8679151576180945, 0.08309163726297675, 0.04899320511892866],
            [2.066666333593815, -0.27948356943341707, -0.8077460141569617],
        ],
        [
            [0.929949154983674, 0.04489525115766552, 0.025155593858660504],
            [2.537577811423838, -0.49322007687629854, -1.0724718095267454],
        ],
    ];
    // PLAIN: {'lr': 2.0, 'momentum': 0.5, 'nesterov': False, 'weight_decay': 0.0, 'batch': 64, 'epochs': 3, 'min_weight': 0.0}, 3 epochs
    pub const PLAIN: [[[f64; 3]; 2]; 3] = [
        [
            [0.36140896339164263, 0.32315570294095586, 0.3154353336674016],
            [0.4159774678425034, 0.3041015476549695, 0.279920984502527],
        ],
        [
            [0.40784891698383574, 0.3103721289328104, 0.28177895408335374],
            [0.54763290078808, 0.27450808994104225, 0.1778590092708776],
        ],
        [
            [0.47588377798885956, 0.2922002654316119, 0.23191595657952854],
            [
                0.7355109544799563,
                0.24777670165671317,
                0.016712343863330453,
            ],
        ],
    ];
}

const N: usize = 50;
const E: usize = 3;
const C: usize = 6;

/// The fixture's `logit(epoch, view, i, e, c)`.
fn logit(epoch: usize, view: usize, i: usize, e: usize, c: usize) -> f64 {
    let (epoch, view, i, e, c) = (epoch as f64, view as f64, i as f64, e as f64, c as f64);
    let shared = (1.0 + 0.5 * e) * 2.0 * (0.9 * i + 1.7 * c + 0.3 * e).sin();
    let noise = (0.4 + 0.8 * e)
        * (2.3 * i + 1.1 * c + 0.7 * e + 1.9 * view + 0.57 * epoch + 0.13 * i * c).sin();
    shared + noise
}

/// Both views of an epoch, `[N, E, C]` each, as f32.
fn views(epoch: usize) -> [Vec<f32>; 2] {
    std::array::from_fn(|v| {
        let mut z = Vec::with_capacity(N * E * C);
        for i in 0..N {
            for e in 0..E {
                for c in 0..C {
                    z.push(logit(epoch, v, i, e, c) as f32);
                }
            }
        }
        z
    })
}

fn order(epoch: usize) -> Vec<usize> {
    let mut o: Vec<usize> = (0..N).collect();
    o.sort_by_key(|&i| (7 * i + 13 * epoch) % N);
    o
}

fn logits(z: &[f32]) -> ExpertLogits<'_> {
    ExpertLogits {
        values: z,
        experts: E,
        classes: C,
    }
}

/// Float32 inputs, f64 arithmetic on both sides: agreement to rounding.
const TOL: f64 = 1e-10;

fn near(got: &[f64], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= TOL * (1.0 + w.abs()),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn one_batch_has_the_references_loss_and_gradient() {
    let z = views(0);
    let batch = &order(0)[..16];
    let (loss, grad) = stability_loss([logits(&z[0]), logits(&z[1])], batch, &[0.2, 0.5, -0.3]);
    near(&[loss], &[pasted::BATCH_LOSS], "loss");
    near(&grad, &pasted::BATCH_GRAD, "gradient");
}

fn fit_case(settings: TestTimeAggregation, want: &[[[f64; 3]; 2]], name: &str) {
    let mut fit = AggregationFit::new(E, &settings);
    let mut epoch = 0;
    while !fit.done() {
        let z = views(epoch);
        fit.epoch([logits(&z[0]), logits(&z[1])], &order(epoch));
        epoch += 1;
        let [a, w] = want
            .get(epoch - 1)
            .unwrap_or_else(|| panic!("{name}: the reference stopped after {} epochs", want.len()));
        near(&fit.weights(), a, &format!("{name} epoch {epoch} weights"));
        near(&fit.w, w, &format!("{name} epoch {epoch} raw weights"));
    }
    assert_eq!(fit.epochs(), want.len(), "{name}: epochs trained");
}

#[test]
fn the_references_settings_follow_its_trajectory() {
    let settings = TestTimeAggregation {
        batch_size: 16,
        epochs: 4,
        ..TestTimeAggregation::default()
    };
    fit_case(settings, &pasted::REFERENCE, "reference");
}

#[test]
fn the_early_stop_reads_the_weights_rounded_to_two_decimals() {
    let settings = TestTimeAggregation {
        batch_size: 16,
        epochs: 8,
        lr: 0.44,
        ..TestTimeAggregation::default()
    };
    // After epoch 4 the smallest weight is 0.049 (not a stop: it rounds to 0.05), after epoch 5
    // 0.025: the fit stops there, 3 epochs early.
    assert!((0.045..0.05).contains(&pasted::EARLY_STOP[3][0][2]));
    fit_case(settings, &pasted::EARLY_STOP, "early stop");
}

#[test]
fn plain_momentum_without_weight_decay_follows_the_reference() {
    let settings = TestTimeAggregation {
        batch_size: 64,
        epochs: 3,
        lr: 2.0,
        momentum: 0.5,
        nesterov: false,
        weight_decay: 0.0,
        min_weight: 0.0,
    };
    fit_case(settings, &pasted::PLAIN, "plain");
}

#[test]
fn identical_views_leave_the_weights_uniform() {
    // Without augmentation the two views agree for any weights: no gradient, and weight decay
    // shrinks equal raw weights equally.
    let z = views(0);
    let mut fit = AggregationFit::new(E, &TestTimeAggregation::default());
    for _ in 0..5 {
        fit.epoch([logits(&z[0]), logits(&z[0])], &order(0));
    }
    for a in fit.weights() {
        assert!((a - 1.0 / 3.0).abs() < 1e-12, "{a}");
    }
}
