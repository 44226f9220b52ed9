//! Helpers of the live test that watch consumers: a `fluvio consume` running in the background,
//! who holds what on their command line, and a short account of a run of offsets.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::cluster::LocalCluster;

/// A `fluvio consume` child whose stdout a thread reads line by line: after `pause_after` lines
/// it stops reading until `resume` (so the consumer blocks on a full pipe, mid-topic).
pub struct RunningConsumer {
    pub child: Child,
    lines: Receiver<std::io::Result<String>>,
    gate: Sender<()>,
    stderr: PathBuf,
}

impl RunningConsumer {
    pub fn start(cluster: &LocalCluster, args: &[&str], pause_after: usize) -> Result<Self> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let stderr = cluster.scratch().join(format!("consume-{n}.err"));
        let mut child = cluster
            .cli()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        let (gate, gate_rx) = channel::<()>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut n = 0;
            loop {
                if n == pause_after {
                    gate_rx.recv().ok();
                }
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) => {
                        // A line cut by a kill has no line break: reported, never parsed.
                        let complete = line.ends_with(b"\n");
                        let text =
                            String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line))
                                .into_owned();
                        let item = if complete {
                            Ok(text)
                        } else {
                            Err(std::io::Error::other(format!("a cut line ({} bytes)", line.len())))
                        };
                        if tx.send(item).is_err() {
                            break;
                        }
                        n += 1;
                    }
                    Err(e) => {
                        tx.send(Err(e)).ok();
                        break;
                    }
                }
            }
        });
        Ok(RunningConsumer { child, lines, gate, stderr })
    }

    /// The next `n` lines, within `timeout`.
    pub fn wait_for(&mut self, n: usize, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => out.push(line?),
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{} of {n} records after {timeout:?}; consumer stderr: {}",
                    out.len(),
                    self.stderr_text()
                ),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "the consumer closed its output after {} of {n} records; stderr: {}",
                    out.len(),
                    self.stderr_text()
                ),
            }
        }
        Ok(out)
    }

    pub fn resume(&self) {
        self.gate.send(()).ok();
    }

    /// Every line still to come, up to the end of its output (the child must have exited).
    pub fn drain(&mut self) -> Result<Vec<String>> {
        let mut out = vec![];
        for line in self.lines.iter() {
            out.push(line?);
        }
        Ok(out)
    }

    /// SIGINT (Ctrl-C: the CLI commits and flushes its offset, then exits), then what it printed
    /// after the lines already read.
    pub fn interrupt(&mut self) -> Result<Vec<String>> {
        // SAFETY: a signal to our own child, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill().ok();
                bail!("the consumer did not exit within 10 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.resume();
        self.drain()
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for RunningConsumer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The pids whose command line (`/proc/PID/cmdline`) holds `needle`.
pub fn processes_whose_command_line_holds(needle: &[u8]) -> Result<Vec<u32>> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // Processes that exit meanwhile, or that are not ours to read, are skipped.
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if contains(&cmdline, needle) {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// "0..=299, 301..=4999 (300 missing)"-style summary for a failure message.
pub fn describe_offsets(offsets: &[i64]) -> String {
    let mut runs: Vec<(i64, i64)> = vec![];
    for &o in offsets {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == o => *end = o,
            _ => runs.push((o, o)),
        }
    }
    let mut seen = BTreeMap::new();
    for &o in offsets {
        *seen.entry(o).or_insert(0) += 1;
    }
    let doubled = seen.values().filter(|&&n| n > 1).count();
    let text: Vec<String> = runs.iter().take(8).map(|(a, b)| format!("{a}..={b}")).collect();
    format!(
        "{} ({} records, {} runs, {doubled} offsets more than once)",
        text.join(", "),
        offsets.len(),
        runs.len()
    )
}
