//! A command run's checkpoint directory as one blob, the unit the daemon stores (chunked and
//! sha256-checked like engine checkpoints) and restores before a retry or a resumed attempt.
//! The format is deliberately small: a magic line, then for each regular file its relative path,
//! size and bytes. Packing follows no symlinks; unpacking refuses absolute paths, `..`, and
//! anything over the limits, so a stored blob cannot write outside the directory.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

const MAGIC: &[u8] = b"cauda-ckdir 1\n";
/// Most files, and most bytes in all, of one checkpoint directory.
pub const MAX_FILES: usize = 10_000;
pub const MAX_TOTAL_BYTES: u64 = 16 << 30;
const MAX_PATH_BYTES: usize = 4096;
/// Where the worker keeps its own state (the report reader's) inside a blob; a program may not
/// write under `.cauda/`.
const STATE: &str = ".cauda/state.json";

#[derive(Debug, thiserror::Error)]
pub enum CkdirError {
    #[error("checkpoint directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint directory {0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CkdirError + '_ {
    move |source| CkdirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Packs every regular file under `dir` (sorted by path; symlinks and other files skipped),
/// with the worker's `state` beside them.
pub fn pack(dir: &Path, state: &[u8]) -> Result<Vec<u8>, CkdirError> {
    let mut files = Vec::new();
    walk(dir, Path::new(""), &mut files)?;
    files.sort();
    if files.iter().any(|f| f.starts_with(".cauda")) {
        return Err(CkdirError::Invalid(format!(
            "{}: `.cauda/` is reserved for cauda's own state",
            dir.display()
        )));
    }
    if files.len() > MAX_FILES {
        return Err(CkdirError::Invalid(format!(
            "{}: {} files; the limit is {MAX_FILES}",
            dir.display(),
            files.len()
        )));
    }
    let mut body = Vec::new();
    entry(&mut body, STATE, state);
    let mut count = 1u64;
    let mut total = 0u64;
    for rel in files {
        let path = dir.join(&rel);
        let mut bytes = Vec::new();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Gone since it was listed: a temporary file renamed into place meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path)(e)),
        };
        file.take(MAX_TOTAL_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io(&path))?;
        total += bytes.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(CkdirError::Invalid(format!(
                "{}: over {MAX_TOTAL_BYTES} bytes",
                dir.display()
            )));
        }
        entry(&mut body, &rel.to_string_lossy(), &bytes);
        count += 1;
    }
    let mut out = MAGIC.to_vec();
    out.extend(count.to_le_bytes());
    out.extend(body);
    Ok(out)
}

fn entry(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    out.extend((name.len() as u64).to_le_bytes());
    out.extend(name.as_bytes());
    out.extend((bytes.len() as u64).to_le_bytes());
    out.extend(bytes);
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), CkdirError> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let kind = entry.file_type().map_err(io(&dir))?;
        let name = rel.join(entry.file_name());
        if kind.is_dir() {
            walk(root, &name, out)?;
        } else if kind.is_file() {
            out.push(name);
        }
        if out.len() > MAX_FILES {
            return Err(CkdirError::Invalid(format!(
                "{}: more than {MAX_FILES} files",
                root.display()
            )));
        }
    }
    Ok(())
}

/// Unpacks a blob from [`pack`] into `dir`, which is emptied first. Returns the program's file
/// count and the worker's state.
pub fn unpack(blob: &[u8], dir: &Path) -> Result<(usize, Vec<u8>), CkdirError> {
    let bad = |m: &str| CkdirError::Invalid(format!("blob: {m}"));
    let mut cur = Cursor(
        blob.strip_prefix(MAGIC)
            .ok_or_else(|| bad("not a cauda-ckdir blob"))?,
    );
    let count = cur.number()?;
    if count > MAX_FILES as u64 + 1 {
        return Err(bad("too many files"));
    }
    // The whole blob is checked before the directory is touched.
    let mut files = Vec::new();
    for _ in 0..count {
        let len = cur.number()?;
        if len == 0 || len > MAX_PATH_BYTES as u64 {
            return Err(bad("a path of bad length"));
        }
        let name =
            std::str::from_utf8(cur.take(len as usize)?).map_err(|_| bad("a path not UTF-8"))?;
        if !Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad(&format!("`{name}` leaves the directory")));
        }
        let size = usize::try_from(cur.number()?).map_err(|_| bad("a file too large"))?;
        files.push((name, cur.take(size)?));
    }
    if !cur.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut state = Vec::new();
    let mut written = 0;
    for (name, bytes) in files {
        if name == STATE {
            state = bytes.to_vec();
            continue;
        }
        written += 1;
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok((written, state))
}

/// Reads a blob front to back.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CkdirError> {
        if self.0.len() < n {
            return Err(CkdirError::Invalid("blob: truncated".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn number(&mut self) -> Result<u64, CkdirError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_round_trips_and_symlinks_stay_out() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::write(src.join("model.pt"), b"weights").unwrap();
        std::fs::write(src.join("sub/deeper/opt.pt"), vec![7u8; 100_000]).unwrap();
        std::fs::write(src.join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let blob = pack(&src, b"{}").unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(dst.join("stale"), b"old").unwrap();
        assert_eq!(unpack(&blob, &dst).unwrap(), (3, b"{}".to_vec()));
        assert_eq!(std::fs::read(dst.join("model.pt")).unwrap(), b"weights");
        assert_eq!(
            std::fs::read(dst.join("sub/deeper/opt.pt")).unwrap().len(),
            100_000
        );
        assert!(dst.join("empty").exists());
        assert!(!dst.join("link").exists(), "symlinks are not followed");
        assert!(
            !dst.join("stale").exists(),
            "the directory is replaced, not merged"
        );
        assert!(
            !dst.join(".cauda").exists(),
            "the state stays out of the program's files"
        );
        assert_eq!(pack(&dst, b"{}").unwrap(), blob, "packing is deterministic");
        std::fs::create_dir_all(dst.join(".cauda")).unwrap();
        std::fs::write(dst.join(".cauda/x"), b"").unwrap();
        assert!(
            pack(&dst, b"")
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }

    #[test]
    fn a_blob_cannot_write_outside_or_lie_about_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut evil = MAGIC.to_vec();
        evil.extend(1u64.to_le_bytes());
        let name = b"../escape";
        evil.extend((name.len() as u64).to_le_bytes());
        evil.extend(name);
        evil.extend(1u64.to_le_bytes());
        evil.push(b'x');
        let err = unpack(&evil, &tmp.path().join("d")).unwrap_err();
        assert!(err.to_string().contains("leaves the directory"), "{err}");
        assert!(!tmp.path().join("escape").exists());

        let src = tmp.path().join("s");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a"), b"abc").unwrap();
        let blob = pack(&src, b"").unwrap();
        for cut in [blob.len() - 1, MAGIC.len() + 3, 3] {
            assert!(
                unpack(&blob[..cut], &tmp.path().join("t")).is_err(),
                "cut at {cut}"
            );
        }
        let mut long = blob.clone();
        long.push(0);
        assert!(
            unpack(&long, &tmp.path().join("t"))
                .unwrap_err()
                .to_string()
                .contains("trailing")
        );
    }
}
