//! TLS end to end: the real `caudad serve` with `[tls]` (a CA and a server certificate made at
//! test time with rcgen) serves the real `cauda` binary over https when it is given the CA,
//! runs a real worker process that dials back over TLS, and refuses what it must: a client
//! without the CA or with another CA, a host name the certificate does not name, and a
//! plaintext client on the TLS port all fail with a clear one-line error. Without `[tls]`,
//! `[auth]` on a public address is refused (tokens would cross the network readable).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// How long one `cauda` invocation may take (a tiny run with --wait included).
const LIMIT: Duration = Duration::from_secs(120);

/// A throwaway CA: its certificate in PEM and the issuer that signs with it.
fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca cert")
}

/// The files of a TLS daemon: its CA, its certificate (for "localhost" only) and key, and a
/// second, unrelated CA.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let ca = make_ca("cauda test CA");
    let other = make_ca("someone else's CA");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        cert: write("server.pem", cert.pem()),
        key: write("server.key", key.serialize_pem()),
    }
}

/// Users ada ("t-ada") and root ("t-root", admin), TLS with the test CA for the workers.
fn config(pki: &Pki) -> String {
    let user = |name: &str, admin: bool| {
        let hash = caudad::store::sha256_hex(format!("t-{name}").as_bytes());
        format!("{{ name = \"{name}\", token_sha256 = \"{hash}\", admin = {admin} }}")
    };
    format!(
        "devices = [\"cpu:2\"]\n[auth]\nusers = [{}, {}]\n[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\nserver_name = \"localhost\"\n",
        user("ada", false),
        user("root", true),
        pki.cert,
        pki.key,
        pki.ca,
    )
}

/// Runs `cmd` to its end within `LIMIT` (killed past it), capturing its output.
fn run_bounded(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cauda runs");
    output_within(child, LIMIT, "cauda")
}

/// `cauda` as ada, without a CA unless one is passed, and with no stored credentials.
fn cauda(cli: &Path, home: &Path, addr: &str, ca: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(cli);
    cmd.arg("--addr").arg(addr);
    if let Some(ca) = ca {
        cmd.arg("--ca-cert").arg(ca);
    }
    cmd.args(args)
        .env("CAUDA_TOKEN", "t-ada")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("CAUDA_CA_CERT")
        .env_remove("CAUDA_ADDR");
    run_bounded(&mut cmd)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The port `caudad` printed (`http://127.0.0.1:PORT`).
fn port(daemon: &Caudad) -> u16 {
    daemon
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the daemon's address")
}

#[test]
fn a_tls_daemon_serves_cauda_and_its_workers_over_https_and_refuses_unverified_peers() {
    let Some(cli) = cauda_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let mut daemon = Caudad::start(dir.path(), &config(&pki));
    let port = port(&daemon);
    // Workers dial https://127.0.0.1:PORT; the harness finds (and reaps) them by that URL.
    daemon.url = format!("https://127.0.0.1:{port}");
    let https = format!("https://localhost:{port}");
    let spec = dir.path().join("tls.toml");
    std::fs::write(&spec, tiny_spec("tls", 1, "")).expect("write spec");
    let home = dir.path();

    // With the CA: a whole run, its worker a real `caudad work` process dialing back over TLS.
    let spec_arg = spec.to_str().expect("utf-8 path");
    let out = cauda(
        &cli,
        home,
        &https,
        Some(&pki.ca),
        &["submit", spec_arg, "--wait"],
    );
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "submit --wait over TLS: {stdout}\n{stderr}"
    );
    let out = cauda(&cli, home, &https, Some(&pki.ca), &["ls"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "ls over TLS: {stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    let out = cauda(&cli, home, &https, Some(&pki.ca), &["whoami"]);
    assert_eq!(text(&out).0.trim(), "ada (token from $CAUDA_TOKEN)");

    // Refused with exit code 3 and one line saying why.
    let unverified = |out: &Output, why: &str| {
        let (stdout, stderr) = text(out);
        assert_eq!(out.status.code(), Some(3), "{why}: {stdout}\n{stderr}");
        assert!(stdout.is_empty(), "{why}: {stdout}");
        assert_eq!(stderr.trim().lines().count(), 1, "{why}: {stderr}");
        assert!(!stderr.contains("panicked"), "{why}: {stderr}");
        stderr
    };
    // Another CA, and the right CA for a name the certificate does not carry.
    let stderr = unverified(
        &cauda(&cli, home, &https, Some(&pki.other_ca), &["ls"]),
        "another CA",
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(stderr.contains("--ca-cert"), "{stderr}");
    let by_ip = format!("https://127.0.0.1:{port}");
    let stderr = unverified(
        &cauda(&cli, home, &by_ip, Some(&pki.ca), &["ls"]),
        "a name not in the certificate",
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(stderr.contains("not valid for name"), "{stderr}");
    // No CA: the system's roots do not know the test CA (or there are none).
    let stderr = unverified(&cauda(&cli, home, &https, None, &["ls"]), "no CA");
    assert!(
        stderr.contains("invalid peer certificate") || stderr.contains("no native certs"),
        "{stderr}"
    );
    // Plaintext HTTP/2 on the TLS port.
    let plain = format!("http://localhost:{port}");
    let stderr = unverified(&cauda(&cli, home, &plain, None, &["ls"]), "plaintext");
    assert!(stderr.contains("use an https:// address"), "{stderr}");

    // The daemon took none of that badly: it still serves.
    let out = cauda(&cli, home, &https, Some(&pki.ca), &["ls"]);
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn auth_without_tls_on_a_public_address_and_broken_tls_files_stop_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(dir.path());
    let serve = |config: &str, listen: &str| {
        let path = dir.path().join("caudad.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(common::caudad_bin());
        cmd.args(["serve", "--listen", listen, "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        let out = run_bounded(&mut cmd);
        assert!(!out.status.success(), "caudad serve must refuse: {config}");
        text(&out).1
    };
    let with_tls = config(&pki);
    let without_tls = &with_tls[..with_tls.find("[tls]").expect("a [tls] section")];
    let stderr = serve(without_tls, "0.0.0.0:0");
    assert!(
        stderr.contains("[tls]") && stderr.contains("0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("allow_insecure_listen"), "{stderr}");
    // A missing key file, and a key that is not a key.
    let missing = with_tls.replace(pki.key.to_str().expect("utf-8"), "/nonexistent/server.key");
    let stderr = serve(&missing, "127.0.0.1:0");
    assert!(stderr.contains("/nonexistent/server.key"), "{stderr}");
    let swapped = with_tls.replace(
        &format!("key = {:?}", pki.key),
        &format!("key = {:?}", pki.ca),
    );
    let stderr = serve(&swapped, "127.0.0.1:0");
    assert!(
        stderr.contains("PRIVATE KEY") && stderr.contains("ca.pem"),
        "{stderr}"
    );
}
