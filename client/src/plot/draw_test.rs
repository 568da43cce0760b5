//! Tests of the drawing, with hand-made data: the SVG parses as XML with one line per method,
//! the PNG is a real PNG of the announced size, the log axis shows round counts, the legend
//! names every method, and missing classes are skipped.

use super::*;
use crate::plot::{Panel, Series};

fn series(method: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        method: method.into(),
        runs: 2,
        points,
    }
}

/// Ten classes of an exp profile (143 down to 2 images), three methods, one missing class.
fn per_class_data() -> PlotData {
    let counts = [143.0, 89.0, 55.0, 35.0, 22.0, 13.0, 8.0, 5.0, 3.0, 2.0];
    let line = |offset: f64| -> Vec<(f64, f64)> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, (0.95 - 0.08 * i as f64 + offset).clamp(0.0, 1.0)))
            .collect()
    };
    let mut with_hole = line(0.05);
    with_hole[4].1 = f64::NAN;
    PlotData {
        title: "e-1 digits-lt: per-class test accuracy".into(),
        x_axis: XAxis::ClassCountDescending,
        y_label: "test accuracy of the class (%)".into(),
        panels: vec![Panel {
            title: "imbalance ratio 50".into(),
            series: vec![
                series("ce", line(0.0)),
                series("ldam-drw", with_hole),
                series("balanced-softmax", line(0.1)),
            ],
        }],
    }
}

/// Parses the SVG as XML; returns the names of its elements and its text content. A data line
/// (a coloured polyline; axes and ticks are black ones) is named `series`.
fn parse_svg(svg: &str) -> (Vec<String>, Vec<String>) {
    let (names, texts) = parse_svg_at(svg);
    (names, texts.into_iter().map(|(t, _)| t).collect())
}

/// [`parse_svg`], with the x position of each text.
fn parse_svg_at(svg: &str) -> (Vec<String>, Vec<(String, f64)>) {
    let mut names = Vec::new();
    let mut texts = Vec::new();
    let mut x = f64::NAN;
    for event in xml::reader::EventReader::new(svg.as_bytes()) {
        match event.expect("the SVG is well-formed XML") {
            xml::reader::XmlEvent::StartElement {
                name, attributes, ..
            } => {
                x = attributes
                    .iter()
                    .find(|a| a.name.local_name == "x")
                    .and_then(|a| a.value.parse().ok())
                    .unwrap_or(f64::NAN);
                let black = attributes
                    .iter()
                    .any(|a| a.name.local_name == "stroke" && a.value == "#000000");
                if name.local_name == "polyline" && !black {
                    names.push("series".to_string());
                } else {
                    names.push(name.local_name);
                }
            }
            xml::reader::XmlEvent::Characters(t) => texts.push((t.trim().to_string(), x)),
            _ => {}
        }
    }
    (names, texts)
}

fn count(names: &[String], element: &str) -> usize {
    names.iter().filter(|n| *n == element).count()
}

#[test]
fn the_svg_is_xml_with_one_line_per_method() {
    let svg = svg(&per_class_data()).unwrap();
    let (names, _) = parse_svg(&svg);
    assert_eq!(names.first().map(String::as_str), Some("svg"));
    assert_eq!(count(&names, "series"), 3, "{names:?}");
}

#[test]
fn the_legend_names_every_method_with_its_runs() {
    let (_, texts) = parse_svg(&svg(&per_class_data()).unwrap());
    for label in ["ce (2)", "ldam-drw (2)", "balanced-softmax (2)"] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
}

#[test]
fn the_log_axis_shows_round_counts_head_first() {
    let svg = svg(&per_class_data()).unwrap();
    let (_, texts) = parse_svg(&svg);
    // The SVG holds the y ticks (0 to 100), then the x ticks, then the legend.
    let y_top = texts.iter().position(|t| t == "100").unwrap();
    let legend = texts.iter().position(|t| t == "method (seeds)").unwrap();
    assert_eq!(
        texts[y_top + 1..legend],
        ["2", "5", "10", "20", "50", "100"]
    );
    assert!(texts.iter().any(|t| t.contains("log scale")));
    // Head on the left: the x tick "100" is left of the x tick "2".
    let (_, at) = parse_svg_at(&svg);
    let x_of = |label: &str| {
        at[y_top + 1..legend]
            .iter()
            .find(|t| t.0 == label)
            .unwrap()
            .1
    };
    assert!(x_of("100") < x_of("2"));
}

#[test]
fn missing_classes_are_skipped() {
    let data = per_class_data();
    let svg = svg(&data).unwrap();
    // ce has 10 circles on the line and one in the legend; ldam-drw (triangles) 9 + 1.
    let (names, _) = parse_svg(&svg);
    assert_eq!(count(&names, "circle"), 11, "{names:?}");
    assert_eq!(count(&names, "polygon"), 10, "{names:?}");
    let mut all_missing = data.clone();
    for s in &mut all_missing.panels[0].series {
        for p in &mut s.points {
            p.1 = f64::NAN;
        }
    }
    assert!(matches!(self::svg(&all_missing), Err(PlotError::Empty(_))));
}

#[test]
fn the_png_is_a_png_of_the_announced_size() {
    let data = per_class_data();
    let bytes = png(&data).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = ::png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let (w, h) = size(&data);
    assert_eq!((reader.info().width, reader.info().height), (w, h));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    // Not blank: white background, and some pixels of the first method's colour.
    assert!(buf.chunks(3).any(|p| p == [255, 255, 255]));
    let blue = [PALETTE[0].0, PALETTE[0].1, PALETTE[0].2];
    assert!(buf.chunks(3).filter(|p| *p == blue).count() > 50);
}

#[test]
fn several_ratios_draw_side_by_side_with_one_legend() {
    let mut data = per_class_data();
    let mut second = data.panels[0].clone();
    second.title = "imbalance ratio 100".into();
    second.series.truncate(2);
    data.panels.push(second);
    let (w1, _) = size(&per_class_data());
    assert!(size(&data).0 > w1);
    let (names, texts) = parse_svg(&svg(&data).unwrap());
    assert_eq!(count(&names, "series"), 5);
    assert_eq!(texts.iter().filter(|t| *t == "ce (2)").count(), 1);
    assert!(texts.iter().any(|t| t == "imbalance ratio 100"));
}

#[test]
fn curves_use_a_linear_epoch_axis() {
    let data = PlotData {
        title: "curves".into(),
        x_axis: XAxis::Epoch,
        y_label: "test top-1 (%)".into(),
        panels: vec![Panel {
            title: String::new(),
            series: vec![
                series("ce", vec![(1.0, 0.3), (2.0, 0.5), (3.0, 0.6)]),
                series("focal", vec![(1.0, 0.2), (2.0, 0.4), (3.0, f64::NAN)]),
            ],
        }],
    };
    let (names, texts) = parse_svg(&svg(&data).unwrap());
    assert_eq!(count(&names, "series"), 2);
    assert!(texts.iter().any(|t| t == "epoch"));
    for tick in ["1", "2", "3"] {
        assert!(texts.iter().any(|t| t == tick), "{tick} in {texts:?}");
    }
}

#[test]
fn long_lines_get_a_bounded_number_of_markers() {
    let long: Vec<(f64, f64)> = (1..=200).map(|e| (f64::from(e), 0.5)).collect();
    let data = PlotData {
        title: "curves".into(),
        x_axis: XAxis::Epoch,
        y_label: "test top-1 (%)".into(),
        panels: vec![Panel {
            title: String::new(),
            series: vec![series("ce", long)],
        }],
    };
    let (names, _) = parse_svg(&svg(&data).unwrap());
    assert_eq!(count(&names, "series"), 1);
    // 200 points, every 13th marked (1, 14, ..., 196), plus the legend's marker.
    assert_eq!(count(&names, "circle"), 16 + 1);
}

#[test]
fn markup_in_names_stays_text() {
    let mut data = per_class_data();
    data.title = "e-1 <b>&amp;\"q\"".into();
    data.panels[0].series[0].method = "a&b<c>".into();
    let (_, texts) = parse_svg(&svg(&data).unwrap());
    assert!(texts.iter().any(|t| t == "e-1 <b>&amp;\"q\""), "{texts:?}");
    assert!(texts.iter().any(|t| t == "a&b<c> (2)"), "{texts:?}");
}

#[test]
fn the_reliability_diagram_has_a_percent_confidence_axis_and_the_diagonal() {
    let data = PlotData {
        title: "calibration".into(),
        x_axis: XAxis::Confidence,
        y_label: "accuracy in the bin (%)".into(),
        panels: vec![Panel {
            title: String::new(),
            series: vec![
                series("ce", vec![(0.25, 0.1), (0.55, 0.4), (0.95, 0.9)]),
                series("balanced-softmax", vec![(0.3, 0.3), (0.9, 0.85)]),
            ],
        }],
    };
    let svg = svg(&data).unwrap();
    let (names, texts) = parse_svg(&svg);
    assert_eq!(count(&names, "series"), 2, "{names:?}");
    assert!(
        texts
            .iter()
            .any(|t| t == "confidence (%); the diagonal is perfect calibration"),
        "{texts:?}"
    );
    for tick in ["0", "20", "100"] {
        assert!(texts.iter().any(|t| t == tick), "{tick} in {texts:?}");
    }
    // The diagonal: a faint black line beside the axes' opaque ones.
    assert!(
        svg.contains("opacity=\"0.35\" stroke=\"#000000\""),
        "no diagonal"
    );
}
