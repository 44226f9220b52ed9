"""scripts/bench's harness: runs every measurement of docs/benchmarks.md and records it in
bench/results/results.json (saved after each one, so an interrupted run keeps what it has).

Needs the services (scripts/services start) and release builds of maskflow and maskflow-bench.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import boto3
import psycopg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
MASKFLOW = os.path.join(TARGET, "release", "maskflow")
BENCH = os.path.join(TARGET, "release", "maskflow-bench")
STATE = os.environ["MASKFLOW_STATE"]
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
PY = sys.executable
BASELINES = os.path.join(REPO, "bench", "baselines")
# Vector's config and tables (integrations/vector: the VRL twin, proven by its conformance crate).
VECTOR_DIR = os.path.join(REPO, "integrations", "vector")

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--sections", default="transform,sink,e2e,idle,lag,batching,original,scale,rekey,replay,keysources,clickhouse")
parser.add_argument("--messages", type=int, default=20_000,
                    help="messages per end-to-end run, the same for every consumer")
parser.add_argument("--rtt-ms", default="0,20,50",
                    help="round trips added between the consumers and SQS (bench/src/relay.rs), one e2e pass each")
parser.add_argument("--consumers", default="ceiling,maskflow,boto3,vector",
                    help="end-to-end consumers, each run in every setting of E2E_VARIANTS at every round trip")
parser.add_argument("--rounds", type=int, default=3, help="runs of the ceiling and of each maskflow setting (medians)")
parser.add_argument("--idle-seconds", type=int, default=120, help="how long the idle run watches an empty queue")
parser.add_argument("--lag-rate", type=int, default=500, help="messages per second sent during the lag run")
parser.add_argument("--lag-seconds", type=int, default=30, help="how long the lag run sends")
parser.add_argument("--sink-batches", default="100,500,1000,10000",
                    help="sink batch sizes; 500 is the host's default --batch-size (the headline)")
parser.add_argument("--original-messages", type=int, default=1_000)
parser.add_argument("--scale", default="10000,100000,1000000", help="message counts for the scaling runs")
parser.add_argument("--rekey-rows", type=int, default=1_000_000, help="rows re-masked by the rekey run")
parser.add_argument("--replay-rejections", default="10000,100000",
                    help="rejections replayed by the replay runs (memory must not grow with them)")
parser.add_argument("--replay-host-messages", type=int, default=20_000,
                    help="messages of the host's end-to-end run the replay is compared with, in the same run")
parser.add_argument("--scale-concurrency", type=int, default=4)
parser.add_argument("--keysource-rounds", type=int, default=15, help="starts per key source (medians)")
parser.add_argument("--clickhouse-events", type=int, default=200_000, help="events of the ClickHouse section (bench/clickhouse.py)")
parser.add_argument("--results", default=os.path.join(REPO, "bench", "results", "results.json"))
parser.add_argument("--key-file", required=True)
args = parser.parse_args()

results = json.load(open(args.results)) if os.path.exists(args.results) else {}
sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1")


def save():
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results + ".tmp", "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(args.results + ".tmp", args.results)


def log(*what):
    print("bench:", *what, file=sys.stderr, flush=True)


def run(cmd):
    """Runs `cmd`; returns its stdout, stderr and wall seconds."""
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout, proc.stderr, time.monotonic() - started


def run_measured(cmd, env=None):
    """Like `run`, plus the child's peak RSS and CPU seconds and the CPU seconds the services
    spent meanwhile. Measured through /usr/bin/time: a child forked from this harness would
    report the harness's own RSS (ru_maxrss survives exec)."""
    before = services_cpu()
    usage_file = os.path.join(tempfile.gettempdir(), f"maskflow-bench-usage-{os.getpid()}")
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", usage_file, *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    after = services_cpu()
    rss_kb, user, system = open(usage_file).read().split()[-3:]
    cpu = {"self": float(user) + float(system), **{k: after[k] - before[k] for k in after}}
    return proc.stdout, proc.stderr, {"wall_s": wall, "peak_rss_kb": int(rss_kb), "cpu_s": cpu}


def proc_cpu(pid, children=False):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_state(pid):
    """A process's state letter (`Z`: exited, not yet reaped) and its own CPU seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return fields[0], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid):
    """VmHWM of a live process (0 once it has exited)."""
    return next((int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:")), 0)


def services_cpu():
    """CPU seconds used so far by LocalStack and by PostgreSQL (postmaster, exited backends
    included through its children's times, and live backends)."""
    localstack = int(open(os.path.join(STATE, "localstack.pid")).read())
    postmaster = int(open(os.path.join(os.environ["MASKFLOW_PGDATA"], "postmaster.pid")).readline())
    backends = subprocess.run(["ps", "--ppid", str(postmaster), "-o", "pid="], capture_output=True, text=True).stdout.split()
    pg = proc_cpu(postmaster, children=True) + sum(proc_cpu(int(p)) for p in backends if os.path.exists(f"/proc/{p}"))
    return {"localstack": proc_cpu(localstack), "postgres": pg}


def fresh_database():
    base = os.environ["DATABASE_URL"]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS maskflow_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE maskflow_bench")
    return base.rsplit("/", 1)[0] + "/maskflow_bench"


def count(url, table):
    """Rows of `table`; 0 while a consumer has not created it yet."""
    with psycopg.connect(url) as conn:
        try:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def fresh_queue(name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    return url


def fill(url, n, seed):
    _, _, wall = run([MASKFLOW, "send", "--generate", str(n), "--seed", str(seed), "--queue-url", url])
    return n / wall


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    version = lambda cmd: subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    pg_bin = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip() or "/usr/lib/postgresql/15/bin"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem / 2**20, 1), "kernel": platform.release(),
            "rustc": version(["rustc", "-V"]), "postgres": version([os.path.join(pg_bin, "postgres"), "--version"]),
            "localstack": "localstack-core 2026.3.0 (host mode: SQS, KMS, Secrets Manager)", "python": platform.python_version()}


def section_transform():
    log("transform: criterion (about 4 minutes)")
    started = time.time()
    subprocess.run(["cargo", "bench", "-p", "maskflow-bench", "--bench", "transform"], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    found = []
    for path in glob.glob(os.path.join(TARGET, "criterion", "**", "new", "benchmark.json"), recursive=True):
        if os.path.getmtime(path) < started:
            continue  # a benchmark of an earlier suite, no longer run
        bench = json.load(open(path))
        estimates = json.load(open(os.path.join(os.path.dirname(path), "estimates.json")))
        elements = (bench.get("throughput") or {}).get("Elements", 1)
        ns = estimates["mean"]["point_estimate"]
        found.append({"group": bench["group_id"], "function": bench["function_id"] or bench.get("value_str"),
                      "value": bench.get("value_str"), "records_per_s": elements / (ns * 1e-9)})
    hits = json.load(open(os.path.join(TARGET, "criterion", "maskflow-cache-hits.json")))
    results["transform"] = {"date": now(), "cache": hits,
                            "benchmarks": sorted(found, key=lambda b: (b["group"], str(b["function"])))}
    save()


def section_sink():
    log("sink: host path vs single-row, multi-row INSERT and COPY")
    url = fresh_database()
    out, _, _ = run([BENCH, "sink", "--database-url", url, "--batch-sizes", args.sink_batches])
    results["sink"] = {"date": now(), "runs": [json.loads(l) for l in out.splitlines() if l.strip()]}
    save()


def section_rekey():
    log(f"rekey: maskflow rekey over {args.rekey_rows} rows under an old key")
    url = fresh_database()
    out, _, _ = run([BENCH, "rekey", "--database-url", url, "--rows", str(args.rekey_rows)])
    results["rekey"] = {"date": now(), "runs": [json.loads(l) for l in out.splitlines() if l.strip()]}
    save()


def section_replay():
    """`maskflow replay` over rejections of a renamed field (all of them become rows), as a
    process: its rows/s and peak RSS at each count, and the host's own end-to-end rate in the
    same run (`maskflow run --drain` with its defaults, LocalStack on this machine). Both compile
    the module into an empty cache, as a first start does."""
    runs = []
    mapping = os.path.join(tempfile.gettempdir(), f"maskflow-bench-replay-mapping-{os.getpid()}.json")
    for n in [int(c) for c in args.replay_rejections.split(",")]:
        log(f"replay: maskflow replay of {n} rejections")
        db = fresh_database()
        out, _, _ = run([BENCH, "seed-rejections", "--database-url", db, "--rejections", str(n),
                         "--key-file", args.key_file, "--mapping-out", mapping])
        with tempfile.TemporaryDirectory() as cache:
            _, err, measured = run_measured([MASKFLOW, "replay", "--database-url", db, "--key-file", args.key_file,
                                             "--mapping", mapping, "--module-cache", cache, "--log-format", "json"])
        done = next(json.loads(l) for l in err.splitlines() if '"event":"replay_done"' in l)
        rows, left = count(db, "user_logins"), count(db, "user_logins_rejected")
        if done["rows"] != n or rows != n or left != 0:
            raise SystemExit(f"bench: replay wrote {rows} rows of {n} ({left} rejections left): {done}")
        runs.append({**measured, "rejections": n, "rows": rows, "rows_per_s": n / measured["wall_s"],
                     "replay_s": done["elapsed_s"]})
        log(f"  {n / measured['wall_s']:.0f} rows/s, peak RSS {measured['peak_rss_kb'] / 1024:.1f} MiB")
        save()
    n = args.replay_host_messages
    log(f"replay: the host's own end-to-end rate, {n} messages")
    url = fresh_queue("bench-replay-host")
    fill(url, n, seed=31)
    host = maskflow_run(url, n, 2, startup=False)
    sqs.delete_queue(QueueUrl=url)
    results["replay"] = {"date": now(), "runs": runs, "host": host}
    log(f"  host {host['msg_per_s']:.0f} msg/s")
    save()
def section_keysources():
    """Start-up time with each key source: `maskflow transform` on empty input (the key read,
    the compiled module loaded from its cache, one instance made), started again and again, the
    sources taking turns so that the machine's drift touches them alike."""
    log(f"keysources: start-up time per key source, {args.keysource_rounds} rounds")
    kms = boto3.client("kms", endpoint_url=ENDPOINT, region_name="us-east-1")
    secrets = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name="us-east-1")
    arn = kms.create_key(Description="maskflow bench")["KeyMetadata"]["Arn"]
    plain = open(args.key_file).read()
    wrapped, _, _ = run([MASKFLOW, "keygen", "--id", "k2", "--kms-key-id", arn])
    tmp = tempfile.mkdtemp(prefix="maskflow-bench-keys-")
    files = {}
    for name, text in (("plain", plain), ("wrapped", wrapped + plain)):
        files[name] = os.path.join(tmp, f"{name}.key")
        with open(files[name], "w") as f:
            f.write(text)
        os.chmod(files[name], 0o600)
        secret = f"maskflow-bench-{name}-{os.getpid()}"
        secrets.create_secret(Name=secret, SecretString=text)
        files[f"secret-{name}"] = secret
    sources = {
        "key file": (["--key-file", files["plain"]], {}),
        "MASKFLOW_KEY": ([], {"MASKFLOW_KEY": plain}),
        "key file, 1 KMS-wrapped line": (["--key-file", files["wrapped"]], {}),
        "Secrets Manager": (["--key-source", f"aws-secretsmanager:{files['secret-plain']}"], {}),
        "Secrets Manager, 1 KMS-wrapped line": (["--key-source", f"aws-secretsmanager:{files['secret-wrapped']}"], {}),
    }
    cache = os.path.join(tmp, "modules")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKFLOW_KEY")}
    times = {name: [] for name in sources}
    for round_ in range(args.keysource_rounds + 1):
        for name, (flags, extra) in sources.items():
            started = time.monotonic()
            proc = subprocess.run([MASKFLOW, "transform", "--module-cache", cache, *flags], input=b"",
                                  capture_output=True, env={**env, **extra})
            wall = time.monotonic() - started
            if proc.returncode != 0:
                raise SystemExit(f"bench: transform with {name} failed:\n{proc.stderr.decode()[-2000:]}")
            if round_ > 0:  # the first round fills the module cache
                times[name].append(wall)
    results["keysources"] = {"date": now(), "rounds": args.keysource_rounds,
                             "runs": [{"source": name, "seconds": sorted(t)} for name, t in times.items()]}
    save()
    shutil.rmtree(tmp)


def maskflow_cmd(url, concurrency, module_cache, extra=()):
    return [MASKFLOW, "run", "--drain", "--concurrency", str(concurrency), "--queue-url", url, "--log-format", "json",
            "--module-cache", module_cache, *extra]


def maskflow_run(url, n, concurrency, extra=(), startup=True):
    """A cold start, as a user's first: an empty module cache, so the module is compiled. Then the
    start-up alone (an empty queue), with that cache cold and then warm: what a restart costs."""
    db = fresh_database()
    env = {"DATABASE_URL": db, "MASKFLOW_KEY_FILE": args.key_file}
    with tempfile.TemporaryDirectory() as cache:
        out, err, measured = run_measured(maskflow_cmd(url, concurrency, os.path.join(cache, "run"), extra), env=env)
        if startup:
            empty = fresh_queue("bench-empty")
            startup = {state: run_measured(maskflow_cmd(empty, concurrency, os.path.join(cache, "startup")), env=env)[2]["cpu_s"]["self"]
                       for state in ("cold", "warm")}
    done = next(json.loads(l) for l in err.splitlines() if '"event":"done"' in l)
    rows, rejected, ledger = count(db, "user_logins"), count(db, "user_logins_rejected"), count(db, "maskflow_ledger")
    if rows + rejected != n or ledger != n:
        raise SystemExit(f"bench: exactly-once violated: {rows} rows + {rejected} rejected, ledger {ledger}, sent {n}")
    # The host's phases (module_s, commit_s) under the names results.json has always used.
    stages = {"receive_s": done["receive_s"], "transform_s": done["module_s"], "write_s": done["commit_s"], "delete_s": done["delete_s"]}
    return {**measured, "messages": n, "msg_per_s": n / measured["wall_s"], "rows": rows, "rejected": rejected, "stages": stages,
            **({"startup_cpu_s": startup} if startup else {})}


def python_run(script, url, n, extra):
    db = fresh_database()
    out, _, measured = run_measured([PY, os.path.join(BASELINES, script), "--queue-url", url, "--database-url", db,
                                     "--key-file", args.key_file, *extra])
    got = json.loads(out)
    if got["messages"] != n:
        raise SystemExit(f"bench: {script} handled {got['messages']} of {n} messages")
    return {**measured, "messages": n, "msg_per_s": n / measured["wall_s"], "rows": got["rows"]}


# --- End to end on a network -------------------------------------------------------------------
#
# Every consumer reads through the relay (bench/src/relay.rs: half the round trip each way, and a
# count of the SQS requests it passes) from a queue filled beforehand with the same messages, and
# is timed from its spawn to the same end: the queue empty (visible and in flight: every message
# deleted) and, for those writing the user_logins tables, every message in them.

# (consumer, setting, flags): the first maskflow line is the defaults the targets are about; the
# other maskflow lines are the flag settings the defaults are compared with.
E2E_VARIANTS = [
    ("ceiling", "16 receives in flight", ["--concurrency", "16"]),
    ("maskflow", "defaults", []),
    ("maskflow", "--pollers 4", ["--pollers", "4"]),
    ("maskflow", "--pollers 16", ["--pollers", "16"]),
    ("maskflow", "--pollers 32", ["--pollers", "32"]),
    ("maskflow", "--concurrency 4 --pollers 16", ["--concurrency", "4", "--pollers", "16"]),
    ("boto3", "16 threads", ["--concurrency", "16"]),
    ("vector", "defaults", []),
    ("vector", "client_concurrency 16", ["16"]),
]


class Relay:
    """`maskflow-bench relay` in front of LocalStack for one run: its endpoint, and at the end the
    requests it passed and the CPU it used."""

    def __init__(self, rtt_ms):
        upstream = ENDPOINT.split("://", 1)[1].rstrip("/")
        self.proc = subprocess.Popen([BENCH, "relay", "--upstream", upstream, "--rtt-ms", str(rtt_ms)],
                                     stdout=subprocess.PIPE, text=True)
        self.endpoint = "http://" + json.loads(self.proc.stdout.readline())["listen"]

    def stop(self):
        cpu = proc_cpu(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        return {**json.loads(out.strip().splitlines()[-1]), "cpu_s": cpu}


def queue_depth(url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def scrape(addr, name):
    """One sample of a maskflow /metrics series, or None."""
    try:
        import urllib.request
        text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=1).read().decode()
    except OSError:
        return None
    values = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + " ") or l.startswith(name + "{")]
    return values[0] if values else None


def timed_to_empty(cmd, url, n, db=None, env=None, cwd=None, metrics_addr=None, stop=False):
    """Spawns `cmd` and waits for the end condition. Returns wall seconds, the process's own CPU
    seconds and peak RSS at that moment, the services' CPU over the run, the process's output
    (after it exits by itself, or after SIGTERM when `stop`) and the most pollers seen.

    The watching must not tax the consumers unequally on two cores: the queue depth (one cheap
    call) is read every 50 ms, the rows only once the queue is empty, over one kept connection
    (a new connection per look cost PostgreSQL a backend start, 40 a second), and maskflow's
    /metrics a few times a second."""
    before = services_cpu()
    err_file = tempfile.TemporaryFile(mode="w+")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_file, text=True,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    deadline = started + max(300, n / 20)
    pollers, rss_kb, trace, looks = 0, 0, [], 0
    rows = RowCounter(db) if db else None
    try:
        while True:
            time.sleep(0.05)
            looks += 1
            # Not proc.poll(): a child that exited stays a zombie until reaped, and a zombie's
            # /proc stat still holds its CPU times.
            state, cpu_self = proc_state(proc.pid)
            rss_kb = max(rss_kb, peak_rss_kb(proc.pid))
            if metrics_addr and state != "Z" and looks % 5 == 0:
                now_pollers = scrape(metrics_addr, "maskflow_pollers")
                if now_pollers is not None:
                    trace.append(now_pollers)
                    pollers = max(pollers, now_pollers)
            if queue_depth(url) == 0 and (rows is None or rows.landed() >= n):
                break
            if state == "Z" or time.monotonic() > deadline:
                err_file.seek(0)
                raise SystemExit(f"bench: {' '.join(cmd[:2])} did not empty the queue "
                                 f"({'exited: ' + str(proc.wait()) if state == 'Z' else 'timed out'}):\n"
                                 f"{err_file.read()[-3000:]}")
        wall = time.monotonic() - started
        after = services_cpu()
    finally:
        if rows:
            rows.close()
        if stop and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    err_file.seek(0)
    return {"wall_s": wall, "cpu_s": {"self": cpu_self, **{k: after[k] - before[k] for k in after}},
            "peak_rss_kb": rss_kb, "stdout": out, "stderr": err_file.read(), "pollers_max": pollers or None,
            "pollers_mean": sum(trace) / len(trace) if trace else None, "pollers_trace": trace}


class RowCounter:
    """Rows and rejections landed in `db`, over one connection kept for the run."""

    def __init__(self, db):
        self.conn = psycopg.connect(db, autocommit=True)

    def landed(self):
        return sum(self._count(t) for t in ("user_logins", "user_logins_rejected"))

    def _count(self, table):
        try:
            return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0  # the consumer has not created it yet

    def close(self):
        self.conn.close()


def e2e_run(kind, flags, url, n, relay, vector=None):
    """One consumer through `relay` until the end condition; exactly-once checked after."""
    if kind == "ceiling":
        r = timed_to_empty([BENCH, "ceiling", "--queue-url", url, "--sqs-endpoint", relay.endpoint, *flags], url, n)
        got = json.loads(r["stdout"])
        if got["messages"] != n:
            raise SystemExit(f"bench: the ceiling consumer deleted {got['messages']} of {n} messages")
        return r
    db = fresh_database()
    if kind == "maskflow":
        addr = f"127.0.0.1:{free_port()}"
        with tempfile.TemporaryDirectory() as cache:
            cmd = [MASKFLOW, "run", "--drain", "--queue-url", url, "--sqs-endpoint", relay.endpoint, "--log-format", "json",
                   "--module-cache", cache, "--metrics-addr", addr, *flags]
            r = timed_to_empty(cmd, url, n, db, env={"DATABASE_URL": db, "MASKFLOW_KEY_FILE": args.key_file},
                               metrics_addr=addr)
        ledger = count(db, "maskflow_ledger")
    elif kind == "boto3":
        r = timed_to_empty([PY, os.path.join(BASELINES, "boto3_consumer.py"), "--queue-url", url, "--database-url", db,
                            "--key-file", args.key_file, "--endpoint-url", relay.endpoint, *flags], url, n)
        if json.loads(r["stdout"])["messages"] != n:
            raise SystemExit(f"bench: the boto3 consumer handled {r['stdout']} of {n} messages")
        return {**r, "rows": count(db, "user_logins")}
    else:
        r = vector_run(vector, url, n, db, relay.endpoint, flags[0] if flags else None)
        ledger = n  # Vector keeps no ledger: rows + rejections below are the check
    rows, rejected = count(db, "user_logins"), count(db, "user_logins_rejected")
    time.sleep(1)  # a batch written twice would show now
    if (rows, rejected) != (count(db, "user_logins"), count(db, "user_logins_rejected")) or rows + rejected != n \
            or ledger != n:
        raise SystemExit(f"bench: {kind} exactly-once violated: {rows} rows + {rejected} rejected, ledger {ledger}, sent {n}")
    return {**r, "rows": rows, "rejected": rejected}


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def section_e2e():
    """Every consumer and setting of E2E_VARIANTS at every round trip of --rtt-ms, on the same
    messages (one seed), each on a fresh queue and a fresh database, through a fresh relay."""
    kinds = args.consumers.split(",")
    vector = find_vector() if "vector" in kinds else None
    if "vector" in kinds and not vector:
        log("e2e: vector SKIPPED: no vector binary (MASKFLOW_VECTOR_BIN, <repo>/../shared/bin/vector, PATH)")
        kinds.remove("vector")
    n = args.messages
    runs = {"date": now(), "messages": n, "rtt_ms": [float(r) for r in args.rtt_ms.split(",")], "runs": [],
            "vector_version": vector and subprocess.run([vector, "--version"], capture_output=True, text=True,
                                                        check=True).stdout.strip()}
    results["e2e"] = runs
    # The relay's own cost: the ceiling consumer straight to LocalStack and through a relay that
    # adds nothing, back to back after a warm-up run (LocalStack's first run is slower).
    for label in ("warm-up", "direct", "relay"):
        url = fresh_queue(f"bench-relay-{label}")
        fill(url, n, seed=1)
        relay = Relay(0) if label == "relay" else None
        try:
            r = timed_to_empty([BENCH, "ceiling", "--queue-url", url, "--concurrency", "16", "--sqs-endpoint",
                                relay.endpoint if relay else ENDPOINT], url, n)
        finally:
            if relay:
                relay.stop()
        sqs.delete_queue(QueueUrl=url)
        runs[f"ceiling_{label.replace('-', '_')}_msg_per_s"] = n / r["wall_s"]
        log(f"e2e: the ceiling consumer, {label}: {n / r['wall_s']:.0f} msg/s")
    # The ceiling and the maskflow settings run --rounds times, interleaved (every setting once,
    # then again), and the page takes each one's median: the targets compare them within a few
    # percent, below this machine's noise between two runs. Vector and boto3 run once.
    for rtt in runs["rtt_ms"]:
        for round_ in range(args.rounds):
            for kind, setting, flags in E2E_VARIANTS:
                if kind in kinds and (round_ == 0 or kind in ("ceiling", "maskflow")):
                    runs["runs"].append(e2e_measure(rtt, kind, setting, flags, round_, vector))
                    save()


def e2e_measure(rtt, kind, setting, flags, round_, vector):
    """One run of E2E_VARIANTS on a fresh queue filled with the e2e messages, through a fresh relay."""
    n = args.messages
    url = fresh_queue(f"bench-{kind}-{round_}-{int(time.time() * 1000)}")
    send_rate = fill(url, n, seed=1)
    log(f"e2e: RTT {rtt:g} ms, {kind} {setting}, round {round_ + 1}, {n} messages (filled at {send_rate:.0f} msg/s)")
    relay = Relay(rtt)
    try:
        r = e2e_run(kind, flags, url, n, relay, vector)
    finally:
        relay_counts = relay.stop()
    sqs.delete_queue(QueueUrl=url)
    r.pop("stdout"), r.pop("stderr"), r.pop("pollers_trace", None)
    requests = relay_counts["requests"]
    r.update({"kind": kind, "setting": setting, "rtt_ms": rtt, "round": round_, "messages": n, "msg_per_s": n / r["wall_s"],
              "cpu_us_per_msg": r["cpu_s"]["self"] * 1e6 / n, "requests": requests,
              "requests_per_1000": sum(requests.values()) * 1000 / n, "relay_cpu_s": relay_counts["cpu_s"]})
    log(f"  {r['msg_per_s']:.0f} msg/s, {r['cpu_us_per_msg']:.0f} µs CPU/msg, "
        f"{r['requests_per_1000']:.0f} requests/1,000 msgs, peak RSS {r['peak_rss_kb'] / 1024:.0f} MiB"
        + (f", {r['pollers_mean']:.1f} pollers on average (most {r['pollers_max']:.0f})" if r.get("pollers_max") else ""))
    return r

def find_vector():
    """As the live test finds it: MASKFLOW_VECTOR_BIN, else <repo>/../shared/bin/vector, else PATH."""
    if os.environ.get("MASKFLOW_VECTOR_BIN"):
        return os.environ["MASKFLOW_VECTOR_BIN"]
    shared = os.path.join(REPO, "..", "shared", "bin", "vector")
    return shared if os.path.isfile(shared) else shutil.which("vector")


def vector_config(work, concurrency):
    """integrations/vector/vector.yaml, with `client_concurrency` when one is given, and a data_dir."""
    config = open(os.path.join(VECTOR_DIR, "vector.yaml")).read()
    source = "    type: aws_sqs\n"
    if config.count(source) != 1:
        raise SystemExit("bench: vector.yaml has no single `type: aws_sqs` line to add client_concurrency to")
    if concurrency:
        config = config.replace(source, f"{source}    client_concurrency: {concurrency}\n")
    config_file = os.path.join(work, "vector.yaml")
    open(config_file, "w").write(config)
    global_file = os.path.join(work, "global.yaml")
    os.mkdir(os.path.join(work, "data"))
    open(global_file, "w").write(f"data_dir: {json.dumps(os.path.join(work, 'data'))}\n")
    return ["--config", config_file, "--config", global_file]


def vector_run(vector, url, n, db, endpoint, concurrency, stop_when_empty=True, seconds=None):
    """Vector on integrations/vector/vector.yaml. It never stops by itself: SIGTERM once the end condition
    holds (or after `seconds`, for the idle measurement)."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(open(os.path.join(VECTOR_DIR, "tables.sql")).read())
    work = tempfile.mkdtemp(prefix="maskflow-bench-vector-")
    try:
        cmd = [vector, *vector_config(work, concurrency)]
        env = {"MASKFLOW_QUEUE_URL": url, "DATABASE_URL": db, "MASKFLOW_KEY": open(args.key_file).read(),
               "AWS_ENDPOINT_URL": endpoint, "VECTOR_LOG": "warn", "VECTOR_COLOR": "never"}
        if seconds is not None:
            proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(seconds)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            return None
        return timed_to_empty(cmd, url, n, db, env=env, cwd=REPO, stop=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def section_idle():
    """Receives a consumer makes on an empty queue (SQS bills each): maskflow and Vector with
    their defaults, through a relay at the first --rtt-ms, for --idle-seconds; per hour."""
    seconds = args.idle_seconds
    rtt = float(args.rtt_ms.split(",")[0])
    runs = {"date": now(), "seconds": seconds, "rtt_ms": rtt, "runs": []}
    results["idle"] = runs
    for kind in ("maskflow", "vector"):
        vector = find_vector() if kind == "vector" else None
        if kind == "vector" and not vector:
            log("idle: vector SKIPPED: no vector binary")
            continue
        url = fresh_queue(f"bench-idle-{kind}")
        db = fresh_database()
        log(f"idle: {kind} on an empty queue for {seconds} s")
        relay = Relay(rtt)
        try:
            if kind == "maskflow":
                proc = subprocess.Popen([MASKFLOW, "run", "--queue-url", url, "--sqs-endpoint", relay.endpoint],
                                        env={**os.environ, "DATABASE_URL": db, "MASKFLOW_KEY_FILE": args.key_file},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(seconds)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            else:
                vector_run(vector, url, 0, db, relay.endpoint, None, seconds=seconds)
        finally:
            counts = relay.stop()
        sqs.delete_queue(QueueUrl=url)
        receives = counts["requests"].get("ReceiveMessage", 0)
        runs["runs"].append({"kind": kind, "receives": receives, "requests": counts["requests"],
                             "receives_per_hour": receives * 3600 / seconds})
        log(f"  {receives} receives in {seconds} s: {receives * 3600 / seconds:.0f} per hour")
        save()


def histogram_quantiles(text, name, quantiles):
    """Quantiles of a Prometheus histogram's cumulative buckets, linear within a bucket."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1]
    out = {}
    for q in quantiles:
        rank, low, below = q * total, 0.0, 0.0
        for le, cum in buckets:
            if cum >= rank:
                out[q] = le if le == float("inf") or cum == below else low + (le - low) * (rank - below) / (cum - below)
                break
            low, below = le, cum
    return out, total


def section_lag():
    """Freshness under steady load: a sender at --lag-rate msg/s for --lag-seconds, straight to
    LocalStack, while maskflow with its defaults reads through a relay at each --rtt-ms; the lag
    (commit time minus SentTimestamp) from the host's own maskflow_lag_seconds histogram."""
    runs = {"date": now(), "rate": args.lag_rate, "seconds": args.lag_seconds, "runs": []}
    results["lag"] = runs
    n = args.lag_rate * args.lag_seconds
    bodies = subprocess.run([MASKFLOW, "send", "--generate", str(n), "--seed", "7", "--print"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    for rtt in [float(r) for r in args.rtt_ms.split(",")]:
        url = fresh_queue(f"bench-lag-{rtt:g}")
        db = fresh_database()
        addr = f"127.0.0.1:{free_port()}"
        relay = Relay(rtt)
        log(f"lag: RTT {rtt:g} ms, {args.lag_rate} msg/s for {args.lag_seconds} s")
        proc = subprocess.Popen([MASKFLOW, "run", "--queue-url", url, "--sqs-endpoint", relay.endpoint,
                                 "--metrics-addr", addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "DATABASE_URL": db, "MASKFLOW_KEY_FILE": args.key_file})
        try:
            time.sleep(2)  # started and long-polling, as a running host is
            started = time.monotonic()
            for i in range(0, n, 10):  # one SendMessageBatch every 10 / rate seconds
                due = started + i / args.lag_rate
                time.sleep(max(0.0, due - time.monotonic()))
                sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(j), "MessageBody": b}
                                                              for j, b in enumerate(bodies[i:i + 10])])
            sent_s = time.monotonic() - started
            deadline = time.monotonic() + 120
            while count(db, "maskflow_ledger") < n and time.monotonic() < deadline:
                time.sleep(0.2)
            import urllib.request
            text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            relay.stop()
        sqs.delete_queue(QueueUrl=url)
        q, total = histogram_quantiles(text, "maskflow_lag_seconds", (0.5, 0.99))
        if total != n:
            raise SystemExit(f"bench: lag histogram holds {total} of {n} messages")
        runs["runs"].append({"rtt_ms": rtt, "messages": n, "sent_msg_per_s": n / sent_s, "p50_s": q[0.5], "p99_s": q[0.99]})
        log(f"  lag p50 {q[0.5] * 1000:.0f} ms, p99 {q[0.99] * 1000:.0f} ms (sent at {n / sent_s:.0f} msg/s)")
        save()


def section_original():
    n = args.original_messages
    url = fresh_queue("bench-original")
    fill(url, n, seed=99)
    log(f"original design: {n} messages, one awslocal subprocess each (about {n // 60 + 1} minutes)")
    r = python_run("original.py", url, n, ["--messages", str(n)])
    sqs.delete_queue(QueueUrl=url)
    results["original"] = {"date": now(), **r}
    log(f"  {r['msg_per_s']:.2f} msg/s")
    save()


def section_scale():
    runs = results.setdefault("scale", {})
    runs.update({"date": now(), "concurrency": args.scale_concurrency, "runs": []})
    for n in [int(n) for n in args.scale.split(",")]:
        url = fresh_queue(f"bench-scale-{n}")
        send_rate = fill(url, n, seed=n)
        log(f"scale: {n} messages at concurrency {args.scale_concurrency} (filled at {send_rate:.0f} msg/s)")
        r = maskflow_run(url, n, args.scale_concurrency)
        sqs.delete_queue(QueueUrl=url)
        runs["runs"].append({"send_msg_per_s": send_rate, **r})
        log(f"  {r['wall_s']:.1f} s, {r['msg_per_s']:.0f} msg/s, peak RSS {r['peak_rss_kb'] / 1024:.0f} MiB")
        save()


def section_batching():
    """The host's --batch-size and --linger-ms defaults, from a sweep: the same messages at the
    default concurrency (2), one setting changed at a time."""
    runs = results.setdefault("batching", {})
    runs.update({"date": now(), "messages": args.messages, "concurrency": 2, "runs": []})
    for batch, linger in [(10, 100), (50, 100), (100, 100), (500, 100), (1000, 100), (500, 20), (500, 500)]:
        url = fresh_queue(f"bench-batch-{batch}-{linger}")
        fill(url, args.messages, seed=batch + linger)
        log(f"batching: --batch-size {batch} --linger-ms {linger}, {args.messages} messages")
        r = maskflow_run(url, args.messages, 2, ["--batch-size", str(batch), "--linger-ms", str(linger)], startup=False)
        sqs.delete_queue(QueueUrl=url)
        runs["runs"].append({"batch_size": batch, "linger_ms": linger, **r})
        log(f"  {r['msg_per_s']:.0f} msg/s, {r['cpu_s']['self'] * 1000 / args.messages:.3f} ms CPU/msg")
        save()


def section_clickhouse():
    """bench/clickhouse.py in the integrations' venv (chDB): the UDFs and the pipeline beside the
    built-in query a ClickHouse user would write, on one thread."""
    log(f"clickhouse: UDFs, pipeline and module beside JSONExtract + encrypt, {args.clickhouse_events} events, one thread")
    venv = subprocess.run([os.path.join(REPO, "integrations", "test"), "--venv"], capture_output=True, text=True,
                          check=True).stdout.strip()
    python = os.path.join(venv, "bin", "python")
    started = time.monotonic()
    proc = subprocess.run([python, os.path.join(REPO, "bench", "clickhouse.py"), "--events", str(args.clickhouse_events),
                           "--maskflow", MASKFLOW, "--key-file", args.key_file], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: bench/clickhouse.py failed ({proc.returncode})")
    results["clickhouse"] = {"date": now(), "wall_s": time.monotonic() - started, **json.loads(proc.stdout)}
    save()


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


results["machine"] = machine()
save()
for name in args.sections.split(","):
    {"transform": section_transform, "sink": section_sink, "e2e": section_e2e, "idle": section_idle, "lag": section_lag,
     "original": section_original, "scale": section_scale, "batching": section_batching,
     "rekey": section_rekey, "replay": section_replay, "keysources": section_keysources,
     "clickhouse": section_clickhouse}[name]()
log(f"results in {args.results}")
