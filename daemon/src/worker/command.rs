//! The worker side of a command run (docs/COMMAND_RUNS.md): restore the run's checkpoint
//! directory, start the program with its report descriptor, forward its output (bounded), turn
//! each report line into a stored epoch or checkpoint, and end the attempt with a clear reason
//! when the program cannot start, exits non-zero, floods its output, stops reporting, or writes
//! a line that does not parse. The program shares the worker's process group, so a cancel's
//! signal reaches it too.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cauda_proto::v1;
use command_fds::{CommandFdExt, FdMapping};

use super::{WorkerError, WorkerRpc};
use crate::command::placeholders::fill_runtime;
use crate::command::protocol::{MAX_LINE_BYTES, Reader, Report};
use crate::command::{CommandRun, ckdir};
use crate::executor::WORKER_TOKEN_ENV;

/// The environment variable that names the folder of run directories (set by the daemon).
pub const RUN_ROOT_ENV: &str = "CAUDA_RUN_ROOT";
/// The descriptor the program writes its report lines to.
pub const REPORT_FD: i32 = 3;
/// How long report lines are still read after the program exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(5);
/// The stderr tail quoted when the program fails.
const TAIL_BYTES: usize = 2048;

/// Why the attempt ends without success: the program's fault (the daemon is told), or the
/// worker's (stopped by the daemon, daemon unreachable).
enum Failure {
    Program(String),
    Worker(WorkerError),
}

impl From<WorkerError> for Failure {
    fn from(e: WorkerError) -> Self {
        Self::Worker(e)
    }
}

/// What the helper threads tell the supervising loop.
enum Msg {
    Line(String),
    TooLong(usize),
    ReportClosed,
    /// stdout or stderr reached its end.
    OutputClosed,
    Flood,
}

/// Runs a command run's attempt to its end.
pub(super) fn run(
    args: &super::WorkerArgs,
    rpc: &WorkerRpc,
    start: &v1::RegisterResponse,
    run: &CommandRun,
) -> Result<(), WorkerError> {
    let root = std::env::var_os(RUN_ROOT_ENV)
        .map_or_else(|| std::env::temp_dir().join("cauda-runs"), PathBuf::from);
    let run_dir = root.join(format!("r-{}", args.run));
    // One checkpoint directory per attempt: an orphaned program of an earlier attempt (its
    // daemon was killed) cannot write into the one this attempt restores.
    let ck_dir = run_dir.join(format!("checkpoint-{}", args.attempt));
    remove_older_checkpoints(&run_dir, args.attempt);
    let outcome = restore(rpc, start, &run_dir, &ck_dir).and_then(|(reader, resumed)| {
        println!(
            "run {} ({}) attempt {}: command `{}` in {}, CUDA_VISIBLE_DEVICES={:?}, resuming after epoch {}",
            start.run_name,
            run.method,
            args.attempt,
            run.command.argv.join(" "),
            run_dir.display(),
            std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default(),
            resumed.unwrap_or(0)
        );
        let mut reader = reader;
        supervise(args, rpc, run, &run_dir, &ck_dir, resumed, &mut reader)?;
        reader.summary(&run.method).map_err(Failure::Program)
    });
    match outcome {
        Ok(summary) => {
            let json = serde_json::to_string(&summary)
                .map_err(|e| WorkerError::Refused(format!("encoding the summary: {e}")))?;
            println!("finished: test top-1 {:.4}", summary.last.test_top1);
            rpc.finish(Ok(json))
        }
        Err(Failure::Program(message)) => {
            if let Some(stop) = rpc.take_stop() {
                return Err(stop);
            }
            eprintln!("command run failed: {message}");
            rpc.finish(Err(message.clone()))?;
            Err(WorkerError::Command(message))
        }
        Err(Failure::Worker(e)) => Err(e),
    }
}

/// Removes the checkpoint directories of earlier attempts (their content is stored).
fn remove_older_checkpoints(run_dir: &std::path::Path, attempt: u32) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let older = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint-"))
            .and_then(|a| a.parse::<u32>().ok())
            .is_some_and(|a| a < attempt);
        if older {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Prepares the run directory and the checkpoint directory: the run's stored checkpoint
/// unpacked (with the report reader's state at that epoch), or an empty directory.
fn restore(
    rpc: &WorkerRpc,
    start: &v1::RegisterResponse,
    run_dir: &std::path::Path,
    ck_dir: &std::path::Path,
) -> Result<(Reader, Option<u32>), Failure> {
    let io =
        |e: std::io::Error| Failure::Program(format!("run directory {}: {e}", run_dir.display()));
    std::fs::create_dir_all(run_dir).map_err(io)?;
    let Some(meta) = &start.resume else {
        if ck_dir.exists() {
            std::fs::remove_dir_all(ck_dir).map_err(io)?;
        }
        std::fs::create_dir_all(ck_dir).map_err(io)?;
        return Ok((Reader::default(), None));
    };
    let blob = rpc.fetch_checkpoint()?;
    let (files, state) = ckdir::unpack(&blob, ck_dir)
        .map_err(|e| Failure::Program(format!("the stored checkpoint cannot be restored: {e}")))?;
    let reader = serde_json::from_slice(&state).unwrap_or_default();
    println!(
        "restored the checkpoint directory of epoch {} ({files} files, {} bytes)",
        meta.epoch,
        blob.len()
    );
    Ok((reader, Some(meta.epoch)))
}

/// Starts the program and follows it to its exit.
fn supervise(
    args: &super::WorkerArgs,
    rpc: &WorkerRpc,
    run: &CommandRun,
    run_dir: &std::path::Path,
    ck_dir: &std::path::Path,
    resumed: Option<u32>,
    reader: &mut Reader,
) -> Result<(), Failure> {
    let runtime = |key: &str| match key {
        "run_dir" => Some(run_dir.display().to_string()),
        "checkpoint_dir" => Some(ck_dir.display().to_string()),
        "run_id" => Some(args.run.to_string()),
        "attempt" => Some(args.attempt.to_string()),
        _ => None,
    };
    let fill = |what: &str, t: &str| {
        fill_runtime(t, runtime).map_err(|e| Failure::Program(format!("{what}: `{t}`: {e}")))
    };
    let argv: Vec<String> = run
        .command
        .argv
        .iter()
        .enumerate()
        .map(|(i, a)| fill(&format!("command.argv[{i}]"), a))
        .collect::<Result<_, _>>()?;
    let cwd = match &run.command.cwd {
        Some(c) => PathBuf::from(fill("command.cwd", c)?),
        None => run_dir.to_path_buf(),
    };
    let (report_rx, report_tx) = std::io::pipe()
        .map_err(|e| Failure::Program(format!("cannot make the report pipe: {e}")))?;
    // A relative program path with a `/` is the spec's `cwd`'s, not the worker's.
    let program = match Path::new(&argv[0]) {
        p if p.is_relative() && argv[0].contains('/') => cwd.join(p),
        p => p.to_path_buf(),
    };
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .current_dir(&cwd)
        .env_remove(WORKER_TOKEN_ENV)
        .envs(&run.command.env)
        .env("CAUDA_RUN_ID", args.run.to_string())
        .env("CAUDA_RUN_NAME", &run.name)
        .env("CAUDA_ATTEMPT", args.attempt.to_string())
        .env("CAUDA_RUN_DIR", run_dir)
        .env("CAUDA_CHECKPOINT_DIR", ck_dir)
        .env("CAUDA_REPORT_FD", REPORT_FD.to_string())
        .env(
            "CAUDA_REPORT_PROTOCOL",
            crate::command::protocol::VERSION.to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match resumed {
        Some(epoch) => cmd.env("CAUDA_RESUME_EPOCH", epoch.to_string()),
        None => cmd.env_remove("CAUDA_RESUME_EPOCH"),
    };
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: report_tx.into(),
        child_fd: REPORT_FD,
    }])
    .map_err(|e| Failure::Program(format!("cannot hand the report descriptor over: {e}")))?;
    let mut child = cmd.spawn().map_err(|e| {
        Failure::Program(format!(
            "cannot start `{}` (command.argv[0]) in {}: {e}",
            argv[0],
            cwd.display()
        ))
    })?;
    // The parent's copy of the report pipe's write end lives in `cmd`: close it, so the reader
    // sees the end of the report when the program (and whatever inherited it) is gone.
    drop(cmd);
    println!("started `{}` as pid {}", argv.join(" "), child.id());

    let (tx, rx) = mpsc::channel();
    let budget = Arc::new(AtomicU64::new(run.command.max_output_mb << 20));
    let tail = Arc::new(Mutex::new(Vec::new()));
    if let Some(out) = child.stdout.take() {
        forward(out, std::io::stdout(), budget.clone(), None, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(
            err,
            std::io::stderr(),
            budget,
            Some(tail.clone()),
            tx.clone(),
        );
    }
    read_reports(report_rx, tx);

    let outcome = follow(rpc, run, ck_dir, reader, &mut child, &rx);
    if outcome.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = outcome?;
    if status.success() {
        return Ok(());
    }
    let tail = tail
        .lock()
        .map(|t| String::from_utf8_lossy(&t).into_owned())
        .unwrap_or_default();
    let how = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("the program exited with status {code}"),
        (None, Some(sig)) => format!(
            "the program was killed by signal {sig}{}",
            nix::sys::signal::Signal::try_from(sig).map_or(String::new(), |s| format!(" ({s})"))
        ),
        _ => format!("the program ended: {status}"),
    };
    Err(Failure::Program(if tail.trim().is_empty() {
        how
    } else {
        format!("{how}; its last output on stderr:\n{}", tail.trim_end())
    }))
}

/// The supervising loop: report lines in, epochs and checkpoints out, until the program exits.
fn follow(
    rpc: &WorkerRpc,
    run: &CommandRun,
    ck_dir: &std::path::Path,
    reader: &mut Reader,
    child: &mut Child,
    rx: &mpsc::Receiver<Msg>,
) -> Result<ExitStatus, Failure> {
    let patience = Duration::from_secs(run.command.report_timeout_s);
    let mut deadline = Instant::now() + patience;
    let mut exited: Option<(ExitStatus, Instant)> = None;
    let mut report_closed = false;
    let mut outputs_open = 2;
    let mut measured = false;
    loop {
        if exited.is_none()
            && let Some(status) = child
                .try_wait()
                .map_err(|e| Failure::Program(format!("waiting for the program: {e}")))?
        {
            exited = Some((status, Instant::now()));
        }
        // Every report line and output line has arrived once the report and both outputs closed
        // (each thread sends in order); a descendant still holding one open gets a bounded grace.
        if let Some((status, at)) = exited
            && ((report_closed && outputs_open == 0) || at.elapsed() > DRAIN_AFTER_EXIT)
        {
            return Ok(status);
        }
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(msg) => msg,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if exited.is_none() && Instant::now() > deadline {
                    return Err(Failure::Program(format!(
                        "no report line for {} s (command.report_timeout_s); the program was stopped",
                        run.command.report_timeout_s
                    )));
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => match exited {
                Some((status, _)) => return Ok(status),
                None => continue,
            },
        };
        match msg {
            Msg::Line(text) => {
                deadline = Instant::now() + patience;
                match reader.read(&text) {
                    Ok(Report::Epoch(record)) => {
                        let peak = if measured {
                            None
                        } else {
                            measured = true;
                            crate::gpu::peak_mb_of(child.id())
                        };
                        rpc.report_epoch(&record, peak)?;
                    }
                    Ok(Report::Checkpoint { epoch }) => {
                        let state = serde_json::to_vec(&*reader).unwrap_or_default();
                        let blob = ckdir::pack(ck_dir, &state)
                            .map_err(|e| Failure::Program(e.to_string()))?;
                        rpc.upload_checkpoint(epoch, &blob)?;
                        println!("checkpoint of epoch {epoch} stored ({} bytes)", blob.len());
                    }
                    Err(e) => return Err(Failure::Program(format!("{e} (docs/COMMAND_RUNS.md)"))),
                }
            }
            Msg::TooLong(n) => {
                return Err(Failure::Program(format!(
                    "a report line of more than {n} bytes; the limit is {MAX_LINE_BYTES}"
                )));
            }
            Msg::ReportClosed => report_closed = true,
            Msg::OutputClosed => outputs_open -= 1,
            Msg::Flood => {
                return Err(Failure::Program(format!(
                    "the program wrote more than {} MiB to stdout and stderr (command.max_output_mb); it was stopped",
                    run.command.max_output_mb
                )));
            }
        }
    }
}

/// Copies the program's output to the worker's (the run's log), line by line within the
/// output budget; past it, says so once and stops reading.
fn forward(
    from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    budget: Arc<AtomicU64>,
    tail: Option<Arc<Mutex<Vec<u8>>>>,
    tx: mpsc::Sender<Msg>,
) {
    std::thread::spawn(move || {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            // Long lines are cut into pieces of at most 16 KiB (the log's line limit).
            match (&mut from).take(16 << 10).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Msg::OutputClosed);
                    return;
                }
                Ok(n) => {
                    let left = budget.fetch_sub(n as u64, Ordering::SeqCst);
                    if left < n as u64 {
                        let _ = tx.send(Msg::Flood);
                        return;
                    }
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    let _ = to.write_all(&line);
                    let _ = to.flush();
                    if let Some(tail) = &tail
                        && let Ok(mut t) = tail.lock()
                    {
                        t.extend_from_slice(&line);
                        let cut = t.len().saturating_sub(TAIL_BYTES);
                        t.drain(..cut);
                    }
                }
            }
        }
    });
}

/// Reads report lines (bounded) until the program's side is closed.
fn read_reports(from: std::io::PipeReader, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        let mut from = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut from)
                .take(MAX_LINE_BYTES as u64 + 2)
                .read_until(b'\n', &mut line)
            {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Msg::ReportClosed);
                    return;
                }
                Ok(n) if n > MAX_LINE_BYTES + 1 => {
                    let _ = tx.send(Msg::TooLong(n));
                    return;
                }
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    if !text.is_empty() && tx.send(Msg::Line(text)).is_err() {
                        return;
                    }
                }
            }
        }
    });
}
