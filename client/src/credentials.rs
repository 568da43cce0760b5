//! The tokens `cauda login` stored: one JSON object, daemon address -> bearer token, in
//! `$XDG_CONFIG_HOME/cauda/credentials` (else `~/.config/cauda/credentials`), readable by its
//! owner only (0600, in a 0700 folder). Commands use the token stored for their `--addr` when
//! `CAUDA_TOKEN` is not set. Writes go to a temporary file renamed over the old one, so a
//! crash never leaves half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::exit::CliError;

/// Largest credentials file read (a token per daemon; a few hundred bytes each).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The credentials file's path, or `None` when neither XDG_CONFIG_HOME nor HOME is set.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("cauda").join("credentials"))
}

/// The key a daemon address is stored under: the address without trailing slashes.
pub fn key(addr: &str) -> String {
    addr.trim().trim_end_matches('/').to_string()
}

/// The stored tokens by daemon address (empty when there is no file).
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, CliError> {
    let io = |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(e)),
    };
    if len > MAX_FILE_BYTES {
        return Err(CliError::Usage(format!(
            "{}: {len} bytes; a credentials file is at most {MAX_FILE_BYTES}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "{}: not a credentials file ({e}); remove it and run `cauda login` again",
            path.display()
        ))
    })
}

/// The token stored for `addr`, if any.
pub fn token_for(addr: &str) -> Result<Option<String>, CliError> {
    let Some(path) = path() else {
        return Ok(None);
    };
    Ok(load(&path)?.remove(&key(addr)))
}

/// Writes `tokens` to `path` (0600), creating its folder (0700).
pub fn save(path: &Path, tokens: &BTreeMap<String, String>) -> Result<(), CliError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CliError::Io { path: p, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    let text = serde_json::to_string_pretty(tokens)
        .map_err(|e| CliError::BadReply(format!("cannot encode credentials: {e}")))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    // `mode` applies only to a new file: make sure of it for a leftover one too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(&tmp))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_owner_only_keyed_by_address() {
        let dir = tempfile_dir();
        let path = dir.join("cauda").join("credentials");
        assert!(load(&path).expect("no file yet").is_empty());
        let mut tokens = BTreeMap::new();
        tokens.insert(key("https://lab:50051/"), "t-ada".to_string());
        save(&path, &tokens).expect("save");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let back = load(&path).expect("load");
        assert_eq!(
            back.get("https://lab:50051").map(String::as_str),
            Some("t-ada")
        );
        std::fs::write(&path, "not json").expect("write");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("credentials"), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    /// A fresh folder under the system's temp dir (the client has no tempfile dependency).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cauda-credentials-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
