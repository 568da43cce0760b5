//! The split-file readers: the field's formats accepted, every malformed input refused naming
//! the file, the line (or JSON entry) and what was expected.

use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_list_file_reads_paths_with_spaces_and_skips_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "ImageNet_LT_train.txt",
        "train/n01440764/n01440764_10026.JPEG 0\n\ntrain/n015/a b.jpg   3\r\n./x/y.png 1\n",
    );
    let entries = read_list(&f).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[0].path,
        Path::new("train/n01440764/n01440764_10026.JPEG")
    );
    assert_eq!(
        (
            entries[1].path.to_str().unwrap(),
            entries[1].label,
            entries[1].line
        ),
        ("train/n015/a b.jpg", 3, 3)
    );
    assert_eq!(entries[2].line, 4);
    assert!(check_labels(&f, &entries, 4).is_ok());
    let err = check_labels(&f, &entries, 3).unwrap_err().to_string();
    assert!(
        err.contains("line 3") && err.contains("label 3 is out of range"),
        "{err}"
    );
}

#[test]
fn bad_list_lines_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{} 1\n", "a".repeat(MAX_LINE_BYTES));
    let cases = [
        ("a.jpg 0\nb.jpg\n", "line 2: expected `relative/path label`"),
        (
            "a.jpg 0\nb.jpg cat\n",
            "line 2: label `cat` is not a non-negative integer",
        ),
        ("a.jpg -1\n", "line 1: label `-1`"),
        ("a.jpg 100000\n", "line 1: label 100000 is out of range"),
        (
            "a.jpg 0\nb.jpg 1\na.jpg 2\n",
            "line 3: `a.jpg` is listed twice (first at line 1)",
        ),
        (
            "/etc/passwd 0\n",
            "line 1: `/etc/passwd` must be a path under the data root",
        ),
        (
            "train/../../x.jpg 0\n",
            "must be a path under the data root",
        ),
        ("\n\n", "no entries"),
        (long.as_str(), "line 1: 4098 bytes"),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let f = write(dir.path(), &format!("l{i}.txt"), text);
        let err = read_list(&f).unwrap_err().to_string();
        assert!(
            err.contains(&format!("l{i}.txt")) && err.contains(says),
            "case {i}: {err}"
        );
    }
    std::fs::write(dir.path().join("bin.txt"), [0xff, 0xfe, b' ', b'1']).unwrap();
    assert!(
        read_list(&dir.path().join("bin.txt"))
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
    assert!(read_list(&dir.path().join("missing.txt")).is_err());
}

const INAT: &str = r#"{
  "images": [{"id": 10, "file_name": "train_val2018/Plantae/1/a.jpg", "width": 800},
             {"id": 11, "file_name": "train_val2018/Aves/0/b.jpg"}],
  "annotations": [{"id": 1, "image_id": 10, "category_id": 1}, {"id": 2, "image_id": 11, "category_id": 0}],
  "categories": [{"id": 0, "name": "Aves sp."}, {"id": 1, "name": "Plantae sp.", "kingdom": "Plantae"}],
  "info": {"year": 2018}, "licenses": []
}"#;

#[test]
fn an_inat_json_gives_entries_and_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let split = read_inat(&write(dir.path(), "train2018.json", INAT)).unwrap();
    assert_eq!(split.class_names, ["Aves sp.", "Plantae sp."]);
    assert_eq!(split.entries.len(), 2);
    assert_eq!((split.entries[0].label, split.entries[0].line), (1, 1));
    assert_eq!(
        split.entries[1].path,
        Path::new("train_val2018/Aves/0/b.jpg")
    );
}

#[test]
fn bad_inat_files_name_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            INAT.replace("\"category_id\": 1}", "\"category_id\": 7}"),
            "annotations[0]: category_id 7 is not a listed category",
        ),
        (
            INAT.replace("\"image_id\": 11", "\"image_id\": 10"),
            "annotations[1]: image 10 has a second annotation",
        ),
        (
            INAT.replace(
                "{\"id\": 2, \"image_id\": 11, \"category_id\": 0}",
                "{\"id\": 2, \"image_id\": 99, \"category_id\": 0}",
            ),
            "images[1]: image 11 has no annotation",
        ),
        (
            INAT.replace("\"id\": 11, \"file_name\"", "\"id\": 10, \"file_name\""),
            "images[1]: id 10 appears twice",
        ),
        (
            INAT.replace("Aves/0/b.jpg", "Plantae/1/a.jpg"),
            "is listed twice (first at images[0])",
        ),
        (
            INAT.replace(
                "{\"id\": 0, \"name\": \"Aves sp.\"}",
                "{\"id\": 5, \"name\": \"Aves sp.\"}",
            ),
            "categories[0]: id 5 is not below the 2 categories",
        ),
        (
            INAT.replace("train_val2018/Aves", "/abs/Aves"),
            "must be a path under the data root",
        ),
        (
            INAT.replace("\"images\"", "\"imgs\""),
            "not an iNaturalist JSON",
        ),
        ("{".to_string(), "not an iNaturalist JSON"),
    ];
    for (i, (text, says)) in cases.iter().enumerate() {
        let f = write(dir.path(), &format!("i{i}.json"), text);
        let err = read_inat(&f).unwrap_err().to_string();
        assert!(
            err.contains(&format!("i{i}.json")) && err.contains(says),
            "case {i}: {err}"
        );
    }
}
