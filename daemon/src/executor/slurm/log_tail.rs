//! The jobs' output files, followed: every poll reads what each live job appended to its log
//! (on the shared file system) and hands the complete lines to the run's log, and keeps the
//! last lines for the error message of an attempt that dies. Bounded per poll and per line.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::executor::StderrTail;
use crate::model::RunId;
use crate::store::MAX_LOG_LINE;

/// Most bytes read from one log per poll (the rest waits for the next poll).
const MAX_READ_PER_POLL: u64 = 1024 * 1024;

/// One followed log.
struct Tail {
    run: RunId,
    path: PathBuf,
    offset: u64,
    /// An incomplete last line, kept until its newline arrives.
    partial: Vec<u8>,
    last_lines: StderrTail,
}

/// The followed logs, by job id.
#[derive(Default)]
pub struct LogTails {
    tails: HashMap<u64, Tail>,
}

impl LogTails {
    /// Follows `path` for `job` of `run` from its start, or (a job an earlier daemon launched,
    /// whose lines that daemon stored) from its current end.
    pub fn follow(&mut self, job: u64, run: RunId, path: PathBuf, from_start: bool) {
        if self.tails.contains_key(&job) {
            return;
        }
        let offset = if from_start {
            0
        } else {
            std::fs::metadata(&path).map_or(0, |m| m.len())
        };
        self.tails.insert(
            job,
            Tail {
                run,
                path,
                offset,
                partial: Vec::new(),
                last_lines: StderrTail::default(),
            },
        );
    }

    /// The jobs followed now.
    pub fn jobs(&self) -> Vec<u64> {
        self.tails.keys().copied().collect()
    }

    /// The new complete lines of every followed log, as (run, line).
    pub fn read_all(&mut self) -> Vec<(RunId, String)> {
        let mut out = Vec::new();
        for tail in self.tails.values_mut() {
            read_new(tail, &mut out, false);
        }
        out
    }

    /// The new complete lines of `run`'s followed logs.
    pub fn read_run(&mut self, run: RunId) -> Vec<String> {
        let mut out = Vec::new();
        for tail in self.tails.values_mut().filter(|t| t.run == run) {
            read_new(tail, &mut out, false);
        }
        out.into_iter().map(|(_, line)| line).collect()
    }

    /// Stops following `job` after reading its last lines (an incomplete last line too);
    /// returns them and the tail of its log.
    pub fn finish(&mut self, job: u64) -> (Vec<(RunId, String)>, String) {
        let mut out = Vec::new();
        match self.tails.remove(&job) {
            Some(mut tail) => {
                read_new(&mut tail, &mut out, true);
                (out, tail.last_lines.text())
            }
            None => (out, String::new()),
        }
    }
}

fn read_new(tail: &mut Tail, out: &mut Vec<(RunId, String)>, flush: bool) {
    let mut buf = Vec::new();
    if let Ok(mut file) = std::fs::File::open(&tail.path)
        && file.seek(SeekFrom::Start(tail.offset)).is_ok()
        && let Ok(n) = file.take(MAX_READ_PER_POLL).read_to_end(&mut buf)
    {
        tail.offset += n as u64;
    }

    tail.partial.extend_from_slice(&buf);
    let mut start = 0;
    while let Some(i) = tail.partial[start..].iter().position(|&b| b == b'\n') {
        emit(tail, start, start + i, out);
        start += i + 1;
    }
    tail.partial.drain(..start);
    if (flush && !tail.partial.is_empty()) || tail.partial.len() > MAX_LOG_LINE {
        let end = tail.partial.len();
        emit(tail, 0, end, out);
        tail.partial.clear();
    }
}

fn emit(tail: &Tail, from: usize, to: usize, out: &mut Vec<(RunId, String)>) {
    let bytes = &tail.partial[from..to];
    let mut line = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_LOG_LINE)]).into_owned();
    if bytes.len() > MAX_LOG_LINE {
        line.push_str(" [cut]");
    }
    tail.last_lines.push(&line);
    out.push((tail.run, line));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn lines_are_read_once_and_a_partial_line_waits_for_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "one\ntw").unwrap();
        let mut tails = LogTails::default();
        tails.follow(5, RunId(1), path.clone(), true);
        assert_eq!(tails.read_all(), vec![(RunId(1), "one".to_string())]);
        assert!(tails.read_all().is_empty());
        write!(f, "o\nthree").unwrap();
        assert_eq!(tails.read_all(), vec![(RunId(1), "two".to_string())]);
        let (last, text) = tails.finish(5);
        assert_eq!(last, vec![(RunId(1), "three".to_string())]);
        assert_eq!(text, "one\ntwo\nthree");
        assert!(!tails.jobs().contains(&5));
        // A job an earlier daemon followed: only what comes after now.
        tails.follow(6, RunId(2), path.clone(), false);
        write!(f, "\nfour\n").unwrap();
        assert_eq!(
            tails.read_all(),
            vec![(RunId(2), String::new()), (RunId(2), "four".to_string())]
        );
        tails.finish(6);
        // One run's lines on demand (the worker's Finish), the others' left for the poll.
        tails.follow(7, RunId(3), path.clone(), false);
        let other = dir.path().join("k.log");
        std::fs::write(&other, "").unwrap();
        tails.follow(8, RunId(4), other.clone(), true);
        write!(f, "\nfive\n").unwrap();
        std::fs::write(&other, "six\n").unwrap();
        assert_eq!(
            tails.read_run(RunId(3)),
            vec![String::new(), "five".to_string()]
        );
        assert!(tails.read_run(RunId(3)).is_empty());
        assert_eq!(tails.read_all(), vec![(RunId(4), "six".to_string())]);
        tails.finish(7);
        tails.finish(8);
    }
}
