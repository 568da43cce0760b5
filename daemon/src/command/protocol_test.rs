//! The report protocol: lines into epoch records and a summary, and every bad line refused with
//! its number.

use super::*;

#[test]
fn epoch_lines_become_records_with_shot_groups_and_a_summary() {
    let mut r = Reader::default();
    let counts = "[500, 150, 60, 30, 10]";
    let first = r
        .read(&format!(
            r#"{{"v":1,"type":"epoch","epoch":1,"train_loss":2.5,"lr":0.1,"test_top1":0.4,"per_class":[0.9,0.5,0.4,0.2,0.0],"class_counts":{counts},"val_top1":0.5,"metrics":{{"ece":0.12}}}}"#
        ))
        .unwrap();
    let Report::Epoch(first) = first else {
        panic!()
    };
    let eval = first.eval.clone().unwrap();
    // many: >100 (500, 150); medium: 20..=100 (60, 30); few: <20 (10) - OLTR's shot_acc.
    assert!((eval.many.unwrap() - 0.7).abs() < 1e-6);
    assert!((eval.medium.unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(eval.few, Some(0.0));
    assert_eq!(first.extra["ece"], 0.12);
    assert_eq!(
        r.read(r#"{"v":1,"type":"checkpoint","epoch":1}"#).unwrap(),
        Report::Checkpoint { epoch: 1 }
    );
    // Counts sent once still group later lines; a line without evaluation has no eval.
    let Report::Epoch(second) = r
        .read(r#"{"v":1,"type":"epoch","epoch":2,"train_loss":2.0}"#)
        .unwrap()
    else {
        panic!()
    };
    assert!(second.eval.is_none());
    r.read(r#"{"v":1,"type":"epoch","epoch":3,"train_loss":1.0,"test_top1":0.35,"per_class":[0.9,0.4,0.3,0.1,0.0],"val_top1":0.45}"#)
        .unwrap();
    let s = r.summary("ldam").unwrap();
    assert_eq!(
        (s.epochs, s.last.test_top1, s.best_test_top1),
        (3, 0.35, 0.4)
    );
    assert_eq!(
        s.val_selected_top1,
        Some(0.4),
        "the test top-1 at the best validation"
    );
    assert_eq!(s.class_counts, [500, 150, 60, 30, 10]);
    assert!(
        Reader::default()
            .summary("x")
            .unwrap_err()
            .contains("without reporting")
    );
}

#[test]
fn bad_lines_are_refused_with_their_number() {
    let cases = [
        ("not json", "expected"),
        (
            r#"{"v":2,"type":"epoch","epoch":1,"train_loss":1}"#,
            "version 2",
        ),
        (
            r#"{"v":1,"type":"epoch","epoch":0,"train_loss":1}"#,
            "from 1",
        ),
        (r#"{"v":1,"type":"eval","epoch":1}"#, "unknown type"),
        (r#"{"v":1,"type":"epoch","epoch":1}"#, "train_loss"),
        (
            r#"{"v":1,"type":"epoch","epoch":1,"train_loss":1,"acc":3}"#,
            "unknown field `acc`",
        ),
        (
            r#"{"v":1,"type":"epoch","epoch":1,"train_loss":1,"test_top1":40}"#,
            "fraction",
        ),
        (
            r#"{"v":1,"type":"epoch","epoch":1,"train_loss":1,"per_class":[0.5]}"#,
            "needs `test_top1`",
        ),
        (
            r#"{"v":1,"type":"epoch","epoch":1,"train_loss":1,"test_top1":0.5,"per_class":[0.5,0.5],"class_counts":[3]}"#,
            "class_counts",
        ),
        (
            r#"{"v":1,"type":"epoch","epoch":1,"train_loss":1,"metrics":{"":1}}"#,
            "metric",
        ),
    ];
    for (i, (line, says)) in cases.iter().enumerate() {
        let mut r = Reader::default();
        r.read(r#"{"v":1,"type":"checkpoint","epoch":1}"#).unwrap();
        let err = r.read(line).unwrap_err();
        assert_eq!(err.line, 2, "case {i}");
        assert!(err.to_string().starts_with("report line 2: "), "{err}");
        assert!(err.reason.contains(says), "case {i}: {err}");
    }
    let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES));
    assert!(
        Reader::default()
            .read(&long)
            .unwrap_err()
            .reason
            .contains("limit")
    );
}
