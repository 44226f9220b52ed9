//! A local Fluvio cluster (one SC, one SPU) for the live tests and the cluster benchmark.
//!
//! Started process by process with `fluvio-run sc` and `fluvio-run spu`, not with `fluvio cluster
//! start --local`, because at Fluvio's commit bcce9f22b (the one ../shared/bin is built from):
//! - the local installer gives SPU `5001 + i` the fixed ports `9010 + 10 i` / `9011 + 10 i`
//!   (fluvio-cluster `runtime/local/spu.rs`, `BASE_PORT`), so two clusters on one machine (a
//!   developer's and CI's) collide; here every port is a free one picked at start;
//! - `fluvio cluster delete` / `shutdown` kill **every** `fluvio-run` process of the machine
//!   by name (`process/mod.rs`, `kill_local_processes`), another user's cluster included; here
//!   each process is this struct's child and is stopped by its own handle;
//! - the SPU's metrics socket defaults to `/tmp/fluvio-spu.sock`, which an SPU deletes and
//!   re-binds at start (`fluvio-spu/src/monitoring.rs`); here it lives in the scratch folder.
//!
//! Everything else is Fluvio's own: the SC keeps its metadata in a folder (`--local`), the SPU
//! is registered as a custom SPU (`fluvio cluster spu register`) and started with its log dir,
//! and the CLI finds the SC through a profile in a scratch `HOME` (`$HOME/.fluvio/config`).
//! The update check stays off: `FLUVIO_ALWAYS_CHECK_UPDATES` and `FLUVIO_RELEASE_CHANNEL` are
//! removed from every child's environment, and no install or hub command is ever run.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::repo_root;

/// The SPU's id: the first id `fluvio cluster start --local` would give it.
const SPU_ID: &str = "5001";
/// How long the SC and the SPU may take to come up (both start in about a second when idle).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variables that would make the CLI look for updates (a download).
const UPDATE_CHECK_VARS: [&str; 2] = ["FLUVIO_ALWAYS_CHECK_UPDATES", "FLUVIO_RELEASE_CHANNEL"];

/// The two Fluvio binaries: the CLI and the cluster (SC and SPU).
#[derive(Debug, Clone)]
pub struct FluvioBins {
    pub fluvio: PathBuf,
    pub fluvio_run: PathBuf,
}

/// Why the binaries were looked for where they were, for the SKIPPED line.
pub const WHERE_BINS_ARE_LOOKED_FOR: &str =
    "MASKFLOW_FLUVIO_BIN_DIR, <repo>/../shared/bin, PATH (both `fluvio` and `fluvio-run`)";

/// `$MASKFLOW_FLUVIO_BIN_DIR` (an error if it lacks either binary: whoever set it expects the
/// tests to run), else `<repo>/../shared/bin`, else `PATH`; `None` where they are absent.
pub fn find_bins() -> Result<Option<FluvioBins>> {
    let in_dir =
        |dir: &Path| FluvioBins { fluvio: dir.join("fluvio"), fluvio_run: dir.join("fluvio-run") };
    let complete = |b: &FluvioBins| b.fluvio.is_file() && b.fluvio_run.is_file();
    if let Some(dir) = std::env::var_os("MASKFLOW_FLUVIO_BIN_DIR").filter(|d| !d.is_empty()) {
        let bins = in_dir(Path::new(&dir));
        if !complete(&bins) {
            bail!(
                "MASKFLOW_FLUVIO_BIN_DIR={}: no `fluvio` and `fluvio-run` in it",
                Path::new(&dir).display()
            );
        }
        return Ok(Some(bins));
    }
    let shared = in_dir(&repo_root().join("../shared/bin"));
    if complete(&shared) {
        return Ok(Some(shared));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path =
        |name: &str| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file());
    Ok(on_path("fluvio")
        .zip(on_path("fluvio-run"))
        .map(|(fluvio, fluvio_run)| FluvioBins { fluvio, fluvio_run }))
}

/// One SC and one SPU on free 127.0.0.1 ports, all state in a temporary folder that is removed
/// (and both processes killed) when this is dropped.
pub struct LocalCluster {
    bins: FluvioBins,
    dir: tempfile::TempDir,
    sc_public: String,
    sc_private: String,
    spu_public: String,
    spu_private: String,
    sc: Child,
    spu: Option<Child>,
}

impl LocalCluster {
    pub fn start(bins: FluvioBins) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("maskflow-fluvio-").tempdir()?;
        for sub in ["home", "logs", "data"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        let [sc_public, sc_private, spu_public, spu_private] = free_ports()?;
        let mut sc = Command::new(&bins.fluvio_run);
        sc.arg("sc").arg("--local").arg(dir.path().join("metadata"));
        sc.args(["--bind-public", &sc_public, "--bind-private", &sc_private]);
        let sc = spawn_logged(sc, &dir.path().join("logs/sc.log"))?;
        let mut cluster = LocalCluster {
            bins,
            dir,
            sc_public,
            sc_private,
            spu_public,
            spu_private,
            sc,
            spu: None,
        };
        cluster.wait_for_port(&cluster.sc_public.clone())?;
        cluster.fluvio(&[
            "profile",
            "add",
            "maskflow-test",
            &cluster.sc_public.clone(),
            "local",
        ])?;
        let (public, private) = (cluster.spu_public.clone(), cluster.spu_private.clone());
        cluster.fluvio(&[
            "cluster",
            "spu",
            "register",
            "--id",
            SPU_ID,
            "--public-server",
            &public,
            "--private-server",
            &private,
        ])?;
        cluster.start_spu()?;
        Ok(cluster)
    }

    /// The scratch `HOME` the CLI runs with (its profile is in `.fluvio/config`).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A scratch folder for the caller's files, removed with the cluster.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The directories of both binaries, for a `PATH` that finds them.
    pub fn bin_dirs(&self) -> Vec<PathBuf> {
        [&self.bins.fluvio, &self.bins.fluvio_run]
            .iter()
            .filter_map(|p| p.parent().map(Path::to_path_buf))
            .collect()
    }

    /// The Fluvio CLI, pointed at this cluster (scratch `HOME`, no update check).
    pub fn cli(&self) -> Command {
        self.command(&self.bins.fluvio)
    }

    /// Any program with the CLI's environment (e.g. a shell that runs `fluvio`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("HOME", self.home());
        for var in UPDATE_CHECK_VARS {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Runs the CLI with these arguments; its stdout, or an error with its stderr.
    pub fn fluvio(&self, args: &[&str]) -> Result<String> {
        let output = self
            .cli()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("fluvio {args:?}"))?;
        checked(output, &format!("fluvio {}", args.join(" ")))
    }

    pub fn create_topic(&self, name: &str) -> Result<()> {
        self.fluvio(&["topic", "create", name]).map(drop)
    }

    /// SIGKILL to the SPU (no chance to flush or say goodbye), and its exit reaped.
    pub fn kill_spu(&mut self) -> Result<()> {
        let mut spu = self.spu.take().context("the SPU is not running")?;
        spu.kill()?;
        spu.wait()?;
        Ok(())
    }

    /// Starts the SPU (again) on the same ports and data folder, and waits until the SC sees it
    /// online.
    pub fn start_spu(&mut self) -> Result<()> {
        assert!(self.spu.is_none(), "one SPU at a time");
        let mut spu = Command::new(&self.bins.fluvio_run);
        spu.args([
            "spu",
            "-i",
            SPU_ID,
            "-p",
            &self.spu_public,
            "-v",
            &self.spu_private,
            "--sc-addr",
            &self.sc_private,
        ]);
        spu.arg("--log-base-dir").arg(self.dir.path().join("data"));
        spu.env("FLUVIO_METRIC_SPU", self.dir.path().join("spu-metrics.sock"));
        self.spu = Some(spawn_logged(spu, &self.dir.path().join("logs/spu.log"))?);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let listed: Value =
                serde_json::from_str(&self.fluvio(&["cluster", "spu", "list", "-O", "json"])?)?;
            if listed[0]["status"]["resolution"] == "Online" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the SPU is not online after {START_TIMEOUT:?}\n{}", self.log_tails())
    }

    /// Waits until every partition of `topic` has an online leader (after an SPU restart the
    /// SC takes a moment to mark them so).
    pub fn wait_partitions_online(&self, topic: &str) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let listed: Value =
                serde_json::from_str(&self.fluvio(&["partition", "list", "-O", "json"])?)?;
            let online = listed
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with(&format!("{topic}-"))))
                .all(|p| p["status"]["resolution"] == "Online");
            if online {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("partitions of {topic} not online after {START_TIMEOUT:?}\n{}", self.log_tails())
    }

    /// The SC's and the SPU's logs as written so far (to look for what must not be in them).
    pub fn logs(&self) -> Result<Vec<u8>> {
        let mut all = std::fs::read(self.dir.path().join("logs/sc.log"))?;
        all.extend(std::fs::read(self.dir.path().join("logs/spu.log"))?);
        Ok(all)
    }

    /// The last lines of both logs, for a failure message.
    pub fn log_tails(&self) -> String {
        ["sc.log", "spu.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join("logs").join(name))
                    .unwrap_or_default();
                let tail: Vec<&str> =
                    text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                format!("--- {name} (last lines)\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_for_port(&self, addr: &str) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("nothing listens on {addr} after {START_TIMEOUT:?}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in self.spu.iter_mut().chain([&mut self.sc]) {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Four ports the kernel just gave out on 127.0.0.1 (held together so they differ, then freed
/// for the cluster to bind: a small race with other programs, fine on a test machine).
fn free_ports() -> Result<[String; 4]> {
    let listeners =
        (0..4).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<Vec<_>>>()?;
    let ports: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<std::io::Result<_>>()?;
    Ok(ports.try_into().expect("four ports"))
}

/// Spawns a cluster process, stdout and stderr appended to `log`, with no update check, and
/// killed by the kernel if the thread that started it dies (a test killed mid-run must not
/// leave an SC or SPU behind; the tests start the cluster from the main thread).
fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
    for var in UPDATE_CHECK_VARS {
        cmd.env_remove(var);
    }
    // SAFETY: prctl is async-signal-safe and touches only the child's own attributes.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().with_context(|| format!("start {cmd:?}"))
}

/// The command's stdout if it exited 0, else an error naming it with its stderr.
pub fn checked(output: Output, what: &str) -> Result<String> {
    if !output.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("output is not UTF-8")
}
