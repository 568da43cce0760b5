//! Tests of the heatmap drawing with hand-made matrices: one cell per non-empty class pair at
//! its place, coloured by its row-normalized share; a grey row for a class without test images;
//! labels with the training counts; bounded ticks and size for 1000 classes; a real PNG.

use super::*;

/// A filled rectangle of the SVG.
#[derive(Debug, Clone, PartialEq)]
struct Rect {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    fill: String,
}

/// The filled rectangles and the texts of an SVG, parsed as XML.
fn parse(svg: &str) -> (Vec<Rect>, Vec<String>) {
    let mut rects = Vec::new();
    let mut texts = Vec::new();
    for event in xml::reader::EventReader::new(svg.as_bytes()) {
        match event.expect("the SVG is well-formed XML") {
            xml::reader::XmlEvent::StartElement {
                name, attributes, ..
            } if name.local_name == "rect" => {
                let get = |key: &str| {
                    attributes
                        .iter()
                        .find(|a| a.name.local_name == key)
                        .map(|a| a.value.clone())
                        .unwrap_or_default()
                };
                let num = |key: &str| get(key).parse::<i32>().unwrap_or(-1);
                if get("fill") != "none" {
                    rects.push(Rect {
                        x: num("x"),
                        y: num("y"),
                        w: num("width"),
                        h: num("height"),
                        fill: get("fill"),
                    });
                }
            }
            xml::reader::XmlEvent::Characters(t) => texts.push(t.trim().to_string()),
            _ => {}
        }
    }
    (rects, texts)
}

fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

fn heatmap(title: &str, classes: usize, counts: Vec<u64>, train: Vec<u64>) -> Heatmap {
    Heatmap {
        title: title.into(),
        classes,
        counts,
        train_counts: train,
    }
}

fn plot(rows: Vec<Vec<Heatmap>>) -> ConfusionPlot {
    ConfusionPlot {
        title: "e-1 digits — confusion matrix".into(),
        rows,
    }
}

/// The cells of a `classes`-class matrix drawn `side` pixels wide: rectangles of one cell's size.
fn cells(rects: &[Rect], side: i32, classes: i32) -> Vec<&Rect> {
    let cell = side / classes;
    rects
        .iter()
        .filter(|r| r.w == cell && r.h == cell)
        .collect()
}

#[test]
fn every_class_pair_is_one_cell_coloured_by_its_share_of_the_row() {
    // 4 classes, every pair predicted at least once: 16 cells of 360 / 4 = 90 pixels.
    #[rustfmt::skip]
    let counts = vec![
        7, 1, 1, 1,
        1, 2, 1, 1,
        1, 1, 1, 2,
        1, 1, 1, 1,
    ];
    let map = heatmap("ce (1), imbalance ratio 10", 4, counts, vec![50, 20, 8, 3]);
    let svg = svg(&plot(vec![vec![map.clone()]])).unwrap();
    let (rects, texts) = parse(&svg);
    let cells = cells(&rects, 360, 4);
    assert_eq!(cells.len(), 16, "{rects:?}");
    // Row by row from the top, columns left to right, each its row-normalized colour.
    let (x0, y0) = (cells[0].x, cells[0].y);
    for t in 0..4 {
        for p in 0..4 {
            let at = cells
                .iter()
                .find(|c| c.x == x0 + 90 * p as i32 && c.y == y0 + 90 * t as i32)
                .unwrap_or_else(|| panic!("no cell ({t}, {p})"));
            let share = map.shares(t).map(|s| s[p]).unwrap();
            assert_eq!(at.fill, hex(colour(share)), "({t}, {p}) share {share}");
        }
    }
    // Class 0's own cell (7 of 10) is darker than class 3's (1 of 4).
    assert_eq!(map.shares(0).map(|s| s[0]), Some(0.7));
    // Labels: the title, the caption, train counts beside the true classes, axis titles,
    // each cell's share in %.
    for label in [
        "e-1 digits — confusion matrix",
        "ce (1), imbalance ratio 10",
        "0 (50)",
        "3 (3)",
        "predicted class",
        "true class (training images)",
        "share of the true class's test images (%)",
        "70",
        "25",
    ] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
}

#[test]
fn empty_cells_are_not_drawn_and_a_class_without_test_images_is_a_grey_row() {
    #[rustfmt::skip]
    let counts = vec![
        3, 0, 1,
        0, 0, 0,
        0, 2, 2,
    ];
    let svg = svg(&plot(vec![vec![heatmap(
        "m (1), no imbalance",
        3,
        counts,
        vec![],
    )]]))
    .unwrap();
    let (rects, texts) = parse(&svg);
    let cells = cells(&rects, 360, 3);
    assert_eq!(cells.len(), 4, "the 4 non-empty cells: {rects:?}");
    let grey: Vec<&Rect> = rects
        .iter()
        .filter(|r| r.fill == hex(NO_TEST) && r.w == 360)
        .collect();
    assert_eq!(grey.len(), 1, "one grey row: {rects:?}");
    assert_eq!(grey[0].y, cells[0].y + 120, "class 1's row");
    assert!(texts.iter().any(|t| t == "no test image"), "{texts:?}");
    // Without training counts the classes are labelled by their id alone.
    assert!(texts.iter().any(|t| t == "true class"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("0 (")), "{texts:?}");
}

#[test]
fn heatmaps_lie_in_one_row_per_ratio() {
    let full = |title: &str| heatmap(title, 2, vec![1, 1, 1, 1], vec![5, 1]);
    let data = plot(vec![
        vec![
            full("ce (2), imbalance ratio 10"),
            full("focal (2), imbalance ratio 10"),
        ],
        vec![full("ce (2), imbalance ratio 100")],
    ]);
    let (w, h) = size(&data);
    let (one_w, one_h) = size(&plot(vec![vec![full("ce")]]));
    assert!(w > one_w && h > one_h, "{w}x{h} vs {one_w}x{one_h}");
    let (rects, texts) = parse(&svg(&data).unwrap());
    assert_eq!(cells(&rects, 360, 2).len(), 12, "4 cells x 3 heatmaps");
    assert_eq!(
        crate::plot::Picture::Confusion(data).describe(),
        "3 heatmap(s) of 2 classes"
    );
    assert!(texts.iter().any(|t| t == "focal (2), imbalance ratio 10"));
}

#[test]
fn a_thousand_classes_draw_one_pixel_per_class_with_bounded_labels() {
    // 1000 classes, 50 test images each, each class confused with its neighbour once.
    let k = 1000;
    let mut counts = vec![0u64; k * k];
    for t in 0..k {
        counts[t * k + t] = 49;
        counts[t * k + (t + 1) % k] = 1;
    }
    let data = plot(vec![vec![heatmap(
        "ce (1), imbalance ratio 256",
        k,
        counts,
        vec![],
    )]]);
    let svg = svg(&data).unwrap();
    let (rects, texts) = parse(&svg);
    assert_eq!(
        cells(&rects, 1000, 1000).len(),
        2000,
        "the non-empty cells only"
    );
    // Labels far enough apart: every 20th true class, every 50th predicted class.
    let numbers: Vec<usize> = texts.iter().filter_map(|t| t.parse().ok()).collect();
    let times = |c: usize| numbers.iter().filter(|&&n| n == c).count();
    assert_eq!(
        [20, 40, 980, 950, 900].map(times),
        [1, 1, 1, 1, 2],
        "20, 40 and 980 down, 950 across, 900 on both"
    );
    assert!(
        !numbers.contains(&10) && !numbers.contains(&990),
        "{numbers:?}"
    );
    assert!(numbers.len() <= 50 + 20 + 5, "{} labels", numbers.len());
    // Shares are not printed in cells this small.
    assert!(!texts.iter().any(|t| t == "98"));
    let (w, h) = size(&data);
    assert!(
        (1000..2000).contains(&w) && (1000..1400).contains(&h),
        "{w}x{h}"
    );
}

#[test]
fn the_colour_scale_runs_from_white_to_dark_blue() {
    assert_eq!(colour(0.0), RGBColor(247, 251, 255));
    assert_eq!(colour(1.0), RGBColor(8, 48, 107));
    assert_eq!(colour(0.5), RGBColor(107, 174, 214));
    assert_eq!(colour(2.0), colour(1.0));
    assert_eq!(colour(f64::NAN), colour(0.0));
    let lightness = |c: RGBColor| u32::from(c.0) + u32::from(c.1) + u32::from(c.2);
    let mut last = u32::MAX;
    for i in 0..=100 {
        let l = lightness(colour(f64::from(i) / 100.0));
        assert!(l <= last, "darker with the share");
        last = l;
    }
}

#[test]
fn the_png_is_a_png_of_the_announced_size_with_the_cells_colours() {
    let data = plot(vec![vec![heatmap(
        "ce (1)",
        2,
        vec![3, 1, 0, 4],
        vec![9, 2],
    )]]);
    let bytes = png(&data).unwrap();
    let decoder = ::png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let (w, h) = size(&data);
    assert_eq!((reader.info().width, reader.info().height), (w, h));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let count = |c: RGBColor| buf.chunks(3).filter(|p| *p == [c.0, c.1, c.2]).count();
    // Class 1's own cell (4 of 4) is the darkest blue, 180 x 180 pixels less its label.
    assert!(count(colour(1.0)) > 150 * 150, "{}", count(colour(1.0)));
    assert!(count(colour(0.75)) > 150 * 150);
}

#[test]
fn nothing_to_draw_is_an_error() {
    let empty = plot(vec![vec![heatmap("bad", 2, vec![1, 2, 3], vec![])]]);
    assert!(matches!(svg(&empty), Err(PlotError::Empty(_))));
    assert!(matches!(svg(&plot(vec![])), Err(PlotError::Empty(_))));
}
