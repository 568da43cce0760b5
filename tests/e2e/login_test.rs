//! `cauda login`, `whoami` and `logout` end to end, with the real `cauda` binary, a temporary
//! XDG_CONFIG_HOME and the real `caudad serve` with `[auth]`: a token the daemon confirms is
//! stored owner-only for that address and used when CAUDA_TOKEN is unset; a token it does not
//! know is never stored; CAUDA_TOKEN still wins; logout forgets it.

use crate::common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// ada ("t-ada") and root ("t-root", admin).
fn config() -> String {
    let user = |name: &str, admin: bool| {
        let hash = caudad::store::sha256_hex(format!("t-{name}").as_bytes());
        format!("{{ name = \"{name}\", token_sha256 = \"{hash}\", admin = {admin} }}")
    };
    format!(
        "devices = [\"cpu:1\"]\n[auth]\nusers = [{}, {}]\n",
        user("ada", false),
        user("root", true)
    )
}

/// `cauda ARGS` against `addr` with `stdin` fed in, the given CAUDA_TOKEN (or none) and the
/// config home `xdg`; bounded by LIMIT.
fn cauda(
    cli: &Path,
    xdg: &Path,
    addr: &str,
    token: Option<&str>,
    stdin: &str,
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(cli);
    cmd.arg("--addr")
        .arg(addr)
        .args(args)
        .env("XDG_CONFIG_HOME", xdg)
        .env("HOME", xdg)
        .env_remove("CAUDA_TOKEN")
        .env_remove("CAUDA_ADDR")
        .env_remove("CAUDA_CA_CERT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("CAUDA_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("cauda runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("feed stdin");
    output_within(child, LIMIT, &format!("cauda {args:?}"))
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn login_stores_a_confirmed_token_that_later_commands_use_and_logout_forgets_it() {
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Caudad::start(dir.path(), &config());
    let addr = daemon.url.as_str();
    let xdg = dir.path().join("xdg");
    let creds = xdg.join("cauda").join("credentials");

    // Not logged in: calls are unauthenticated.
    let o = cauda(&cli, &xdg, addr, None, "", &["whoami"]);
    assert!(
        !o.status.success() && out(&o).contains("authorization"),
        "{}",
        out(&o)
    );

    // A token the daemon does not know is refused and not stored; neither is an empty one.
    let o = cauda(&cli, &xdg, addr, None, "t-nobody\n", &["login"]);
    assert!(
        !o.status.success() && out(&o).contains("unknown token"),
        "{}",
        out(&o)
    );
    assert!(!creds.exists());
    let o = cauda(&cli, &xdg, addr, None, "\n", &["login"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("no token"), "{}", out(&o));

    // ada logs in from stdin: stored 0600, keyed by the address.
    let o = cauda(&cli, &xdg, addr, None, "t-ada\n", &["login"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("logged in to") && out(&o).contains("as ada"),
        "{}",
        out(&o)
    );
    let mode = std::fs::metadata(&creds)
        .expect("stored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).expect("read")).expect("json");
    assert_eq!(stored[addr], "t-ada");

    // Later commands use it; CAUDA_TOKEN still wins over it.
    let o = cauda(&cli, &xdg, addr, None, "", &["whoami"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).starts_with("ada (token from "), "{}", out(&o));
    assert!(out(&o).contains("credentials"), "{}", out(&o));
    let o = cauda(&cli, &xdg, addr, None, "", &["ls"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = cauda(&cli, &xdg, addr, Some("t-root"), "", &["whoami"]);
    assert_eq!(out(&o).trim(), "root (admin) (token from $CAUDA_TOKEN)");
    // Another address has no stored token.
    let other = addr.replace("127.0.0.1", "localhost");
    let o = cauda(&cli, &xdg, &other, None, "", &["whoami"]);
    assert!(!o.status.success(), "{}", out(&o));

    // --token-file replaces the stored token (root now).
    let file = dir.path().join("token");
    std::fs::write(&file, "t-root\n").expect("write token file");
    let file_arg = file.to_str().expect("utf-8");
    let o = cauda(
        &cli,
        &xdg,
        addr,
        None,
        "",
        &["login", "--token-file", file_arg],
    );
    assert!(out(&o).contains("as root (admin)"), "{}", out(&o));
    let o = cauda(&cli, &xdg, addr, None, "", &["whoami"]);
    assert!(out(&o).starts_with("root (admin)"), "{}", out(&o));

    // Logout forgets it; a second logout says there was nothing.
    let o = cauda(&cli, &xdg, addr, None, "", &["logout"]);
    assert!(
        o.status.success() && out(&o).contains("logged out of"),
        "{}",
        out(&o)
    );
    let o = cauda(&cli, &xdg, addr, None, "", &["whoami"]);
    assert!(!o.status.success(), "{}", out(&o));
    let o = cauda(&cli, &xdg, addr, None, "", &["logout"]);
    assert!(out(&o).contains("not logged in"), "{}", out(&o));
}

#[test]
fn login_to_a_daemon_without_auth_stores_nothing() {
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Caudad::start(dir.path(), "devices = [\"cpu:1\"]\n");
    let xdg = dir.path().join("xdg");
    let o = cauda(&cli, &xdg, &daemon.url, None, "t-ada\n", &["login"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("does not check tokens"), "{}", out(&o));
    assert!(!xdg.join("cauda").join("credentials").exists());
    let o = cauda(&cli, &xdg, &daemon.url, None, "", &["whoami"]);
    assert!(out(&o).starts_with("anonymous"), "{}", out(&o));
}
