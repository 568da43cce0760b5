"""What a command run costs the daemon per reported epoch (issue 17; docs/COMMAND_RUNS.md).

Starts a real `caudad serve` (one CPU slot, [commands] enabled), submits command runs whose
program reports N epochs as fast as it can (per-class accuracy and class counts of C classes,
a checkpoint of a small directory every K epochs), waits for each to succeed and prints, per
reported epoch: the daemon's own CPU time (utime + stime of caudad serve, from /proc), the
worker's and program's CPU time (the daemon's reaped children), the wall time, and the bytes
sled grew by. A second row runs the same program with no daemon (its lines to /dev/null), the
floor a program pays anyway. Run by bench/command_runs.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")

PROGRAM = r"""
import json, os, sys
n, classes, every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
fd = int(os.environ.get("CAUDA_REPORT_FD", "-1"))
out = os.fdopen(fd, "w", buffering=1) if fd >= 0 else open(os.devnull, "w")
ck = os.environ.get("CAUDA_CHECKPOINT_DIR", "/tmp")
counts = [int(5000 * 100 ** (-c / (classes - 1))) for c in range(classes)]
for e in range(1, n + 1):
    per = [round(0.9 - 0.008 * c + 0.00001 * e, 6) for c in range(classes)]
    out.write(json.dumps({"v": 1, "type": "epoch", "epoch": e, "train_loss": 1.0 / e, "lr": 0.1,
        "test_top1": sum(per) / classes, "per_class": per, "class_counts": counts,
        "metrics": {"ece": 0.05}}) + "\n")
    if e % every == 0:
        with open(os.path.join(ck, "state.tmp"), "wb") as f:
            f.write(os.urandom(64 << 10))
        os.replace(os.path.join(ck, "state.tmp"), os.path.join(ck, "state.bin"))
        out.write(json.dumps({"v": 1, "type": "checkpoint", "epoch": e}) + "\n")
"""


def cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children) CPU seconds of a process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = (int(fields[13]) + int(fields[14])) / TICK
    return own, children


def du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--caudad", required=True)
    p.add_argument("--cauda", required=True)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="cauda-cmdbench-")
    prog = os.path.join(tmp, "report.py")
    open(prog, "w").write(PROGRAM)
    config = os.path.join(tmp, "caudad.toml")
    open(config, "w").write('devices = ["cpu:1"]\nmax_retries = 0\n[commands]\nenabled = true\n')
    data = os.path.join(tmp, "data")
    daemon = subprocess.Popen(
        [a.caudad, "serve", "--listen", "127.0.0.1:0", "--config", config, "--data-dir", data],
        stderr=subprocess.PIPE, text=True)
    addr = None
    for line in daemon.stderr:  # type: ignore[union-attr]
        if line.startswith("caudad listening on "):
            addr = "http://" + line.split()[-1]
            break
    assert addr, "caudad printed no address"
    subprocess.Popen(["cat"], stdin=daemon.stderr, stdout=subprocess.DEVNULL)

    rows = []
    try:
        for i in range(a.runs):
            spec = os.path.join(tmp, f"spec{i}.toml")
            open(spec, "w").write(
                f'name = "bench{i}"\n[train]\nseed = {i}\n[command]\n'
                f'argv = ["{sys.executable}", "{prog}", "{a.epochs}", "{a.classes}", "{a.checkpoint_every}"]\n')
            size0 = du(data)
            own0, kids0 = cpu(daemon.pid)
            t0 = time.time()
            out = subprocess.run([a.cauda, "--addr", addr, "submit", spec, "--wait"],
                                 capture_output=True, text=True)
            wall = time.time() - t0
            if out.returncode != 0:
                show = subprocess.run([a.cauda, "--addr", addr, "show", f"r-{i + 1}"],
                                      capture_output=True, text=True).stdout
                sys.exit(f"run {i} failed: {out.stdout}\n{out.stderr}\n{show}")
            own1, kids1 = cpu(daemon.pid)
            # The run's own start-to-end (the CLI's --wait polls once a second).
            show = json.loads(subprocess.run([a.cauda, "--addr", addr, "show", f"r-{i + 1}", "--json"],
                                             capture_output=True, text=True, check=True).stdout)
            # proto3 JSON: 64-bit integers are strings.
            wall = (int(show["finished_at_ms"]) - int(show["started_at_ms"])) / 1e3
            rows.append((wall, own1 - own0, kids1 - kids0, du(data) - size0))
        t0 = time.time()
        c0 = os.times()
        subprocess.run([sys.executable, prog, str(a.epochs), str(a.classes), str(a.checkpoint_every)],
                       check=True, env={k: v for k, v in os.environ.items() if not k.startswith("CAUDA_")})
        floor_wall = time.time() - t0
        c1 = os.times()
        floor_cpu = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    finally:
        daemon.terminate()
        daemon.wait()
    n = a.epochs
    print(f"{a.runs} command runs x {n} epochs ({a.classes} classes, a 64 KiB checkpoint every {a.checkpoint_every} epochs)")
    print(f"{'':28} {'run ms/epoch':>14} {'daemon CPU ms':>14} {'worker+prog CPU ms':>19} {'sled bytes':>11}")
    for i, (wall, own, kids, grew) in enumerate(rows):
        print(f"{'through caudad, run ' + str(i + 1):28} {1e3 * wall / n:14.3f} {1e3 * own / n:14.3f} {1e3 * kids / n:19.3f} {grew / n:11.0f}")
    print(f"{'program alone (no daemon)':28} {1e3 * floor_wall / n:14.3f} {'-':>14} {1e3 * floor_cpu / n:19.3f} {'-':>11}")
    best = min(rows)
    print(f"ratio wall through caudad / alone: {best[0] / floor_wall:.1f}x; "
          f"epochs/s through one command run: {n / best[0]:.0f}")


if __name__ == "__main__":
    main()
