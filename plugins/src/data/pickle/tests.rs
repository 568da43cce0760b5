//! The pickle reader on the shapes CIFAR files take (Python 2's cPickle, Python 3 at protocols
//! 2 and 5) and its refusals: truncation, unknown opcodes and callables, back-references to
//! containers, nesting and copying bounds.

use std::path::Path;

use super::*;
use crate::data::cifar::{CifarKind, load_dir};
use crate::data::cifar_pickle::parse_batch;
use crate::data::{ImageSet, numbered_classes};

/// A batch as Python 2's cPickle wrote the original CIFAR-10 files: str keys and the pixels as
/// SHORT_BINSTRING / BINSTRING, the array through `_reconstruct`, REDUCE and BUILD.
pub(crate) fn py2_batch(pixels: &[u8], rows: u16, labels: &[u8]) -> Vec<u8> {
    let mut b =
        b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03".to_vec();
    b.extend(b"cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01");
    b.push(b'M');
    b.extend(rows.to_le_bytes());
    b.extend(b"M\x00\x0c\x86cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ");
    b.extend(b"\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T");
    b.extend((pixels.len() as u32).to_le_bytes());
    b.extend(pixels);
    b.extend(b"q\x08tbU\x06labelsq\x09]q\x0a(");
    for &l in labels {
        b.extend([b'K', l]);
    }
    b.extend(b"eu.");
    b
}

fn empty_set() -> ImageSet {
    crate::data::cifar::empty_set(&numbered_classes(10))
}

#[test]
fn python2_cpickle_batches_load_with_their_pixels_and_labels() {
    let pixels: Vec<u8> = (0..2 * 3072).map(|i| (i % 253) as u8).collect();
    let bytes = py2_batch(&pixels, 2, &[3, 9]);
    let v = load(&bytes).unwrap();
    match v.get("data").unwrap() {
        Value::Array { shape, dtype, data } => {
            assert_eq!(shape, &[2, 3072]);
            assert_eq!(dtype, "u1");
            assert_eq!(data.as_bytes().unwrap(), pixels.as_slice());
        }
        other => panic!("{other:?}"),
    }
    let mut set = empty_set();
    parse_batch(Path::new("b"), &bytes, CifarKind::Cifar10, &mut set).unwrap();
    assert_eq!(set.labels, vec![3, 9]);
    assert_eq!(set.pixels, pixels);
    set.validate().unwrap();
}

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cifar_pickle")
        .join(rel)
}

/// Pixel value of image `i` in batch `b` at flat position `p` (bench/fixtures/cifar_pickles.py).
fn pixel(i: usize, b: usize, p: usize) -> u8 {
    match p {
        5 => 5,
        1031 => (1031 % 251) as u8,
        _ => ((7 * i + 3 * b) % 256) as u8,
    }
}

#[test]
fn torchvision_folders_from_python3_load_at_protocols_2_and_5() {
    // Protocol 2 (bytes as _codecs.encode), CIFAR-10, given the parent folder (torchvision's root).
    let tt = load_dir(&fixture("p2")).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (10, 3));
    assert_eq!(tt.train.class_names[9], "truck");
    let want: Vec<u32> = (1..=5u32).flat_map(|b| [b % 10, (3 + b) % 10]).collect();
    assert_eq!(tt.train.labels, want);
    for (k, (b, i)) in [(1, 0), (1, 1), (5, 1)].into_iter().enumerate() {
        let img = tt.train.image(2 * (b - 1) + i);
        for p in [0, 5, 1031, 3071] {
            assert_eq!(img[p], pixel(i, b, p), "case {k} pixel {p}");
        }
    }
    assert_eq!(tt.test.labels, vec![0, 3, 6]);
    // Protocol 5 (_frombuffer, BYTEARRAY8, STACK_GLOBAL, MEMOIZE, FRAME), CIFAR-100, the folder itself.
    let tt = load_dir(&fixture("p5/cifar-100-python")).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (4, 2));
    assert_eq!(tt.train.labels, vec![1, 4, 7, 10]);
    assert_eq!(tt.train.class_names[42], "class42");
    assert_eq!(tt.train.image(3)[1031], pixel(3, 1, 1031));
    assert_eq!(tt.train.image(3)[2000], pixel(3, 1, 2000));
    tt.train.validate().unwrap();
}

#[test]
fn malformed_pickles_are_refused_with_the_offset() {
    let good = py2_batch(&[0; 3072], 1, &[1]);
    let cut = &good[..good.len() - 40];
    let e = load(cut).unwrap_err();
    assert!(e.message.contains("truncated"), "{e}");
    assert!(
        load(b"\x80\x02cos\nsystem\n(U\x02lstR.")
            .unwrap_err()
            .message
            .contains("os.system")
    );
    assert!(
        load(b"\x80\x02}q\x00h\x00.")
            .unwrap_err()
            .message
            .contains("container")
    );
    let e = load(b"\x80\x02\x01.").unwrap_err();
    assert_eq!(e.offset, 2);
    assert!(e.message.contains("0x01"), "{e}");
    assert!(
        load(b"\x80\x07}.")
            .unwrap_err()
            .message
            .contains("protocol 7")
    );
    assert!(
        load(b"\x80\x02a.")
            .unwrap_err()
            .message
            .contains("underflow")
    );
    // Lists nested deeper than MAX_DEPTH.
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', usize::from(MAX_DEPTH) + 1));
    deep.extend(std::iter::repeat_n(b'a', usize::from(MAX_DEPTH)));
    deep.push(b'.');
    assert!(load(&deep).unwrap_err().message.contains("nest deeper"));
    // Memoize, append, memoize, append...: each append copies the shared list.
    let mut copy = b"\x80\x02]".to_vec();
    for _ in 0..8_000 {
        copy.extend(b"q\x00K\x01a");
    }
    copy.push(b'.');
    assert!(load(&copy).unwrap_err().message.contains("copying"));
    // A dict without the CIFAR keys, and labels that do not fit.
    let mut set = empty_set();
    let err = parse_batch(Path::new("x"), b"\x80\x02}.", CifarKind::Cifar10, &mut set);
    assert!(err.unwrap_err().to_string().contains("b'labels'"));
    let bad_label = py2_batch(&[0; 3072], 1, &[10]);
    let err = parse_batch(Path::new("x"), &bad_label, CifarKind::Cifar10, &mut set);
    assert!(err.unwrap_err().to_string().contains("below 10"));
    let short = py2_batch(&[0; 3072], 2, &[1, 2]);
    let err = parse_batch(Path::new("x"), &short, CifarKind::Cifar10, &mut set);
    assert!(err.unwrap_err().to_string().contains("holds 3072 bytes"));
}
