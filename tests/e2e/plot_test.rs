//! `cauda plot` against a live daemon: a grid of 3 methods x 2 seeds on the embedded digits
//! trains through `caudad serve`, then the real `cauda` binary draws the per-class picture, the
//! curves and the reliability diagram as SVG and PNG, with one line per method, and the
//! confusion matrices, one heatmap per method with a cell per non-empty class pair of the
//! matrices the runs stored (which agree with their final accuracies).

use crate::common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;

const METHODS: [&str; 3] = ["ce", "focal", "balanced-softmax"];

fn cauda(addr: &str, args: &[&str]) -> Output {
    Command::new(cauda_bin().expect("cauda binary"))
        .arg("--addr")
        .arg(addr)
        .args(args)
        .output()
        .expect("cauda runs")
}

fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "exit {:?}: {out}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The data lines of a plot: coloured polylines (axes and ticks are black).
fn series_lines(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|el| {
            let tag = &el[..el.find('>').unwrap_or(el.len())];
            !tag.contains("stroke=\"#000000\"")
        })
        .count()
}

/// Width and height from a PNG's IHDR chunk, after checking its signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "a PNG of {} bytes", bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[tokio::test(flavor = "multi_thread")]
async fn cauda_plot_draws_one_line_per_method_of_a_live_experiment() {
    if cauda_bin().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:3\"]\n");
    let mut client = daemon.client().await;
    let sweep = format!("[sweep]\nmethod = {:?}\n\"train.seed\" = [1, 2]\n", METHODS);
    let submitted = submit(&mut client, &tiny_spec("plots", 3, &sweep)).await;
    assert_eq!(submitted.runs.len(), 6);
    let ids: Vec<u64> = submitted.runs.iter().map(|r| r.run_id).collect();
    let runs = wait_all_done(&mut client, &ids, Duration::from_secs(120)).await;
    for run in &runs {
        assert_eq!(run.state(), cauda_proto::v1::RunState::Succeeded, "{run:?}");
    }
    let addr = daemon.url.clone();
    let exp = format!("e-{}", submitted.experiment_id);
    let file = |name: &str| dir.path().join(name);
    let path = |name: &str| file(name).to_str().unwrap().to_string();

    let out = ok(cauda(&addr, &["plot", &exp, "--out", &path("x.svg")]));
    assert!(out.contains("1 panel(s), 3 line(s)"), "{out}");
    let svg = std::fs::read_to_string(file("x.svg")).unwrap();
    assert!(
        svg.trim_start().starts_with("<svg"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(series_lines(&svg), METHODS.len());
    for method in METHODS {
        assert!(
            svg.contains(&format!("{method} (2)")),
            "legend names {method}"
        );
    }
    assert!(svg.contains("log scale") && svg.contains("imbalance ratio 10"));

    ok(cauda(&addr, &["plot", &exp, "--out", &path("x.png")]));
    let png = std::fs::read(file("x.png")).unwrap();
    let (w, h) = png_size(&png);
    assert!(w >= 600 && h >= 400, "{w}x{h}");

    let out = ok(cauda(
        &addr,
        &["plot", &exp, "--kind", "curves", "--out", &path("c.svg")],
    ));
    assert!(out.contains("3 line(s)"), "{out}");
    let curves = std::fs::read_to_string(file("c.svg")).unwrap();
    assert_eq!(series_lines(&curves), METHODS.len());
    assert!(curves.contains("epoch"));

    let out = ok(cauda(
        &addr,
        &[
            "plot",
            &exp,
            "--kind",
            "calibration",
            "--out",
            &path("r.svg"),
        ],
    ));
    assert!(out.contains("3 line(s)"), "{out}");
    let reliability = std::fs::read_to_string(file("r.svg")).unwrap();
    assert_eq!(series_lines(&reliability), METHODS.len());
    assert!(reliability.contains("perfect calibration"));

    // The stored confusion matrices are the final evaluation's: a row sums to the class's
    // test images (the same for every run: one test set), the diagonal over it is the class's
    // accuracy, the trace over all images the top-1.
    let mut rows_of_first: Option<Vec<u64>> = None;
    for run in &runs {
        let summary = run.summary.as_ref().expect("a summary");
        let m = summary
            .confusion
            .as_ref()
            .expect("an engine run stores its matrix");
        let k = m.classes as usize;
        assert_eq!((k, m.counts.len()), (10, 100), "{}", run.name);
        let rows: Vec<u64> = m.counts.chunks(k).map(|r| r.iter().sum()).collect();
        assert_eq!(
            rows_of_first.get_or_insert(rows.clone()),
            &rows,
            "{}",
            run.name
        );
        let last = summary.last.as_ref().unwrap();
        let per_class = cauda_proto::per_class_from_wire(&last.per_class);
        for (t, row) in rows.iter().enumerate() {
            let want = (*row > 0).then(|| (m.counts[t * k + t] as f64 / *row as f64) as f32);
            assert_eq!(per_class[t], want, "{} class {t}", run.name);
        }
        let trace: u64 = (0..k).map(|t| m.counts[t * k + t]).sum();
        let total: u64 = rows.iter().sum();
        assert_eq!(
            (trace as f64 / total as f64) as f32,
            last.test_top1,
            "{}",
            run.name
        );
    }
    // The heatmaps: per method, the seeds' counts summed; a 36-pixel cell (10 classes in 360
    // pixels) per non-empty class pair.
    let mut cells = 0;
    for method in METHODS {
        let mut sum = [0u64; 100];
        for run in runs.iter().filter(|r| r.method == method) {
            let m = run.summary.as_ref().unwrap().confusion.as_ref().unwrap();
            for (s, c) in sum.iter_mut().zip(&m.counts) {
                *s += c;
            }
        }
        cells += sum.iter().filter(|&&c| c > 0).count();
    }
    let out = ok(cauda(
        &addr,
        &["plot", &exp, "--kind", "confusion", "--out", &path("m.svg")],
    ));
    assert!(out.contains("3 heatmap(s) of 10 classes"), "{out}");
    let heatmaps = std::fs::read_to_string(file("m.svg")).unwrap();
    assert!(heatmaps.trim_end().ends_with("</svg>"));
    assert_eq!(
        heatmaps.matches("width=\"36\" height=\"36\"").count(),
        cells
    );
    for method in METHODS {
        assert!(
            heatmaps.contains(&format!("{method} (2), imbalance ratio 10")),
            "a heatmap of {method}"
        );
    }
    assert!(heatmaps.contains("predicted class") && heatmaps.contains("true class"));
    ok(cauda(
        &addr,
        &["plot", &exp, "--kind", "confusion", "--out", &path("m.png")],
    ));
    let (w, h) = png_size(&std::fs::read(file("m.png")).unwrap());
    assert!(w >= 3 * 360 && h >= 360, "{w}x{h}");

    // Bad input: an unknown experiment is exit 4, a wrong extension exit 2.
    let missing = cauda(&addr, &["plot", "e-99", "--out", &path("y.svg")]);
    assert_eq!(missing.status.code(), Some(4));
    let bad = cauda(&addr, &["plot", &exp, "--out", &path("y.pdf")]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!file("y.svg").exists() && !file("y.pdf").exists());
}
