//! `caudad serve` as a user starts it: the real binary on 127.0.0.1 port 0 with a sled data dir,
//! driven by the real `cauda` client binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn serve_accepts_a_grid_from_the_cauda_client_and_keeps_it_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("caudad.toml");
    std::fs::write(&config, "devices = [\"cpu:2\"]\n").unwrap();
    let start = || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caudad"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        // Bounded: the daemon prints its address first; give up after 200 lines.
        let addr = lines
            .by_ref()
            .take(200)
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("caudad listening on ").map(str::to_string))
            .expect("caudad printed its address");
        std::thread::spawn(move || lines.for_each(drop));
        (child, format!("http://{addr}"))
    };
    let cauda = |addr: &str, args: &[&str]| {
        let cli = std::path::Path::new(env!("CARGO_BIN_EXE_caudad")).with_file_name("cauda");
        Command::new(cli)
            .arg("--addr")
            .arg(addr)
            .args(args)
            .output()
            .unwrap()
    };
    let cli = std::path::Path::new(env!("CARGO_BIN_EXE_caudad")).with_file_name("cauda");
    if !cli.exists() {
        eprintln!(
            "skipped: the cauda binary is not built next to caudad ({})",
            cli.display()
        );
        return;
    }

    let (mut daemon, addr) = start();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/digits-demo.toml");
    let out = cauda(&addr, &["submit", spec]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("experiment e-1: 13 runs"));
    let ls = cauda(&addr, &["ls", "--json"]);
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let listed = String::from_utf8_lossy(&ls.stdout).to_string();
    assert_eq!(
        listed.matches("\"running\"").count(),
        2,
        "two CPU slots: {listed}"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    let (mut daemon, addr) = start();
    let show = cauda(&addr, &["show", "r-13"]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let text = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(
        text.contains("digits-lt/method=tau-norm") && text.contains("queued"),
        "{text}"
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
