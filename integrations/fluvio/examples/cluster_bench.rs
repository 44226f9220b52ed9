//! Records/s of the SmartModule in a running Fluvio cluster, next to the same SmartModule in
//! Fluvio's engine library, the native library and the host (`maskflow transform`), on the same
//! events, in one run (README.md, "Throughput"). Run by integrations/fluvio/bench:
//!
//!     cargo run --release --example cluster_bench -- [--records N] [--rounds R] [--out FILE]
//!
//! Every figure is wall-clock records/s of one whole step as a user runs it (a CLI command from
//! start to exit, or the loop of engine calls); each step runs `--rounds` times, interleaved, and
//! the median is reported with the range. Each cluster step's output is counted (rows and
//! rejections) and must equal the host's counts, so no step is fast because it skipped work.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use maskflow_fluvio_test::cluster::{find_bins, LocalCluster, WHERE_BINS_ARE_LOOKED_FOR};
use maskflow_fluvio_test::events::{self, BATCH};
use maskflow_fluvio_test::reference::maskflow_bin;
use maskflow_fluvio_test::{
    chain, input, native_outcome, repo_root, smartmodule_path, test_config_json, Msg,
};
use maskflow_transform::{Config, Transformer};

const SENT_MS: i64 = 1_700_000_000_000;
/// Events for the default-batch produce step (each produce request costs a chain build).
const SMALL: usize = 5_000;
/// `--batch-size` for the CLI producer: one produce request per 256 KiB of events (~1,600). Not
/// more: a consumer through the SmartModule stalls on a stored batch whose outcomes exceed its
/// max bytes (1 MB), and outcomes are ~2x the bodies (README.md, "Producing and consuming with
/// the CLI").
const BIG_BATCH: &str = "262144";
/// `-b` for a plain consumer: at the Fluvio commit tested, a plain consumer skips the batch a
/// fetch response (1 MB by default) ends in (README.md, "Offsets, restarts and what Fluvio
/// promises"); one response for the whole topic avoids it.
const PLAIN_MAX_BYTES: &str = "67108864";

/// Rows and rejections a step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    rows: usize,
    rejections: usize,
}

impl Counts {
    /// From outcome lines: `{"row"...}` / `{"rejection"...}` (SmartModule) or a row object /
    /// `{"rejected"...}` (`maskflow transform`).
    fn of_line(&mut self, line: &str) {
        if line.starts_with("{\"rejection\"") || line.starts_with("{\"rejected\"") {
            self.rejections += 1;
        } else if !line.is_empty() {
            self.rows += 1;
        }
    }
}

struct Step {
    name: &'static str,
    records: usize,
    what: &'static str,
    times: Vec<Duration>,
}

impl Step {
    fn new(name: &'static str, records: usize, what: &'static str) -> Self {
        Step { name, records, what, times: vec![] }
    }
}

fn main() -> Result<()> {
    let mut records = 100_000usize;
    let mut rounds = 3usize;
    let mut out: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--records" => records = args.next().context("--records N")?.parse()?,
            "--rounds" => rounds = args.next().context("--rounds R")?.parse()?,
            "--out" => out = Some(args.next().context("--out FILE")?),
            other => bail!("unknown argument {other}"),
        }
    }
    let Some(bins) = find_bins()? else {
        eprintln!("cluster bench SKIPPED: no Fluvio binaries ({WHERE_BINS_ARE_LOOKED_FOR})");
        return Ok(());
    };
    let maskflow = maskflow_bin()?;
    let module = smartmodule_path();
    ensure!(
        module.is_file(),
        "{}: build it with scripts/build-wasm --smartmodule",
        module.display()
    );

    let cluster = LocalCluster::start(bins)?;
    let dir = cluster.scratch().to_path_buf();
    let key_file = dir.join("test.key");
    std::fs::copy(repo_root().join("tests/vectors/test.key"), &key_file)?;
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let chain_file = dir.join("chain.yaml");
    let status = Command::new(repo_root().join("integrations/fluvio/transforms-file"))
        .arg(&key_file)
        .arg(&chain_file)
        .status()?;
    ensure!(status.success(), "transforms-file failed");
    cluster.fluvio(&[
        "smartmodule",
        "create",
        "maskflow",
        "--wasm-file",
        &module.to_string_lossy(),
    ])?;

    // The same events for every step: `id<TAB>body` lines for the CLI producer, bodies alone for
    // `maskflow transform`; and the first SMALL of them for the default-batch produce step.
    let small = records.min(SMALL);
    let events: Vec<(String, String)> =
        (0..records).map(|i| (events::id(i), events::body(i))).collect();
    let (lines_file, bodies_file, small_lines, small_bodies) = (
        dir.join("events.lines"),
        dir.join("events.bodies"),
        dir.join("small.lines"),
        dir.join("small.bodies"),
    );
    write_events(&events, &lines_file, &bodies_file)?;
    write_events(&events[..small], &small_lines, &small_bodies)?;
    let chain = chain_file.to_string_lossy().into_owned();
    let (lines, small_lines) =
        (lines_file.to_string_lossy().into_owned(), small_lines.to_string_lossy().into_owned());

    // What every masking step must count: the host's rows and rejections (the first run also
    // fills its compiled-module cache).
    let reference = run_host(&maskflow, &key_file, &bodies_file)?;
    let small_reference = run_host(&maskflow, &key_file, &small_bodies)?;

    // In this order: the consume steps read the topics the produce steps fill.
    let mut steps = vec![
        Step::new("native library", records, "`Transformer::transform` + outcome JSON, in process"),
        Step::new("engine library", records, "the SmartModule in `fluvio-smartengine` 0.50.1, in process, batches of 1000"),
        Step::new("host", records, "`maskflow transform < bodies > outcomes` (ABI v1 module, wasmtime), whole command"),
        Step::new("cluster, plain produce", records, "`fluvio produce --batch-size 262144 -f events`, no SmartModule (transport alone)"),
        Step::new("cluster, masked on produce", records, "`fluvio produce --batch-size 262144 --transforms-file chain.yaml -f events` (SmartModule in the SPU)"),
        Step::new("cluster, masked on produce, default batches", small, "the same with the CLI's default batch size (16 KB): the SPU builds the chain anew for every produce request"),
        Step::new("cluster, plain consume", records, "`fluvio consume -B -d -b 67108864`, no SmartModule (transport alone)"),
        Step::new("cluster, masked on consume", records, "`fluvio consume -B -d --transforms-file chain.yaml` (SmartModule in the SPU)"),
    ];
    for round in 0..rounds {
        eprintln!("cluster bench: round {} of {rounds} ({records} records)", round + 1);
        let (raw, masked, masked_small) =
            (format!("raw-{round}"), format!("masked-{round}"), format!("masked-small-{round}"));
        for topic in [&raw, &masked, &masked_small] {
            cluster.create_topic(topic)?;
        }
        for step in steps.iter_mut() {
            let t = Instant::now();
            let (counts, expected) = match step.name {
                "native library" => (run_native(&events), reference),
                "engine library" => (run_engine(&events)?, reference),
                "host" => (run_host(&maskflow, &key_file, &bodies_file)?, reference),
                "cluster, plain produce" => {
                    cluster.fluvio(&[
                        "produce",
                        &raw,
                        "--batch-size",
                        BIG_BATCH,
                        "--key-separator",
                        "\t",
                        "-f",
                        &lines,
                    ])?;
                    step.times.push(t.elapsed());
                    continue;
                }
                "cluster, masked on produce" => {
                    cluster.fluvio(&[
                        "produce",
                        &masked,
                        "--batch-size",
                        BIG_BATCH,
                        "--key-separator",
                        "\t",
                        "-f",
                        &lines,
                        "--transforms-file",
                        &chain,
                    ])?;
                    step.times.push(t.elapsed());
                    check(
                        step.name,
                        count_consumed(
                            &cluster,
                            &["consume", &masked, "-B", "-d", "-b", PLAIN_MAX_BYTES],
                        )?,
                        reference,
                    )?;
                    continue;
                }
                "cluster, masked on produce, default batches" => {
                    cluster.fluvio(&[
                        "produce",
                        &masked_small,
                        "--key-separator",
                        "\t",
                        "-f",
                        &small_lines,
                        "--transforms-file",
                        &chain,
                    ])?;
                    step.times.push(t.elapsed());
                    check(
                        step.name,
                        count_consumed(
                            &cluster,
                            &["consume", &masked_small, "-B", "-d", "-b", PLAIN_MAX_BYTES],
                        )?,
                        small_reference,
                    )?;
                    continue;
                }
                "cluster, plain consume" => {
                    let counts = count_consumed(
                        &cluster,
                        &["consume", &raw, "-B", "-d", "-b", PLAIN_MAX_BYTES],
                    )?;
                    // Every line is a body (a row to `Counts`, which only knows outcomes).
                    (
                        Counts { rows: counts.rows + counts.rejections, rejections: 0 },
                        Counts { rows: records, rejections: 0 },
                    )
                }
                "cluster, masked on consume" => (
                    count_consumed(
                        &cluster,
                        &["consume", &raw, "-B", "-d", "--transforms-file", &chain],
                    )?,
                    reference,
                ),
                _ => unreachable!(),
            };
            step.times.push(t.elapsed());
            check(step.name, counts, expected)?;
        }
    }
    let table = report(&steps, records, rounds, reference);
    println!("{table}");
    if let Some(out) = out {
        std::fs::write(&out, &table)?;
        eprintln!("cluster bench: written to {out}");
    }
    Ok(())
}

fn write_events(events: &[(String, String)], lines: &Path, bodies: &Path) -> Result<()> {
    let (mut lines, mut bodies) = (
        std::io::BufWriter::new(std::fs::File::create(lines)?),
        std::io::BufWriter::new(std::fs::File::create(bodies)?),
    );
    for (id, body) in events {
        writeln!(lines, "{id}\t{body}")?;
        writeln!(bodies, "{body}")?;
    }
    lines.flush()?;
    bodies.flush()?;
    Ok(())
}

/// A step's output must count what the host counted on the same events: no step is fast
/// because it skipped work.
fn check(name: &str, counts: Counts, expected: Counts) -> Result<()> {
    ensure!(counts == expected, "{name}: {counts:?}, expected {expected:?} (the host's count)");
    Ok(())
}

fn run_native(events: &[(String, String)]) -> Counts {
    let mut library =
        Config::from_json(&test_config_json()).and_then(Transformer::new).expect("test config");
    let mut counts = Counts::default();
    for (id, body) in events {
        let outcome = native_outcome(&mut library, id, body.as_bytes(), SENT_MS);
        if outcome.get("rejection").is_some() {
            counts.rejections += 1;
        } else {
            counts.rows += 1;
        }
    }
    counts
}

fn run_engine(events: &[(String, String)]) -> Result<Counts> {
    let mut engine = chain(&[("config", &test_config_json())], None)?;
    let mut counts = Counts::default();
    for batch in events.chunks(BATCH) {
        let messages: Vec<Msg> = batch
            .iter()
            .map(|(id, body)| Msg { id, body: body.as_bytes(), sent_timestamp_ms: SENT_MS })
            .collect();
        let output = engine.process(input(&messages))?;
        for record in &output.successes {
            counts.of_line(std::str::from_utf8(record.value.as_ref())?);
        }
    }
    Ok(counts)
}

fn run_host(maskflow: &Path, key_file: &Path, bodies: &Path) -> Result<Counts> {
    let mut child = Command::new(maskflow)
        .arg("transform")
        .arg("--key-file")
        .arg(key_file)
        .args(["--sent-timestamp-ms", &SENT_MS.to_string()])
        .stdin(std::fs::File::open(bodies)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let counts = count_lines(child.stdout.take().expect("piped"))?;
    ensure!(child.wait()?.success(), "maskflow transform failed");
    Ok(counts)
}

/// Runs a `fluvio consume` and counts its output lines as outcomes.
fn count_consumed(cluster: &LocalCluster, args: &[&str]) -> Result<Counts> {
    let mut child = cluster
        .cli()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let counts = count_lines(child.stdout.take().expect("piped"))?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "fluvio {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(counts)
}

fn count_lines(stdout: impl std::io::Read) -> Result<Counts> {
    let mut counts = Counts::default();
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        counts.of_line(&line?);
    }
    Ok(counts)
}

fn report(steps: &[Step], records: usize, rounds: usize, counts: Counts) -> String {
    let rates = |step: &Step| {
        let mut rates: Vec<f64> =
            step.times.iter().map(|d| step.records as f64 / d.as_secs_f64()).collect();
        rates.sort_by(f64::total_cmp);
        (rates[rates.len() / 2], rates[0], rates[rates.len() - 1])
    };
    let engine = rates(steps.iter().find(|s| s.name == "engine library").expect("engine step")).0;
    let mut text = format!(
        "<!-- written by integrations/fluvio/bench (examples/cluster_bench.rs); do not edit -->\n\
         {records} generated events (integrations/fluvio/src/events.rs: distinct ips and device ids, 2% malformed; \
         {} rows and {} rejections, counted in every masking step's output), {rounds} rounds, one run on this \
         machine. Records/s are the median of the rounds (min-max); ratio = median / the engine library's median.\n\n\
         | step | records | records/s | range | vs engine library | what is timed |\n|---|---|---|---|---|---|\n",
        counts.rows, counts.rejections
    );
    for step in steps {
        let (m, lo, hi) = rates(step);
        let k = |r: f64| {
            if r >= 10_000.0 {
                format!("{:.0}k", r / 1e3)
            } else {
                format!("{:.1}k", r / 1e3)
            }
        };
        let ratio = if m / engine >= 0.1 {
            format!("{:.2}x", m / engine)
        } else {
            format!("{:.3}x", m / engine)
        };
        text += &format!(
            "| {} | {} | {} | {}-{} | {ratio} | {} |\n",
            step.name,
            step.records,
            k(m),
            k(lo),
            k(hi),
            step.what
        );
    }
    text
}
