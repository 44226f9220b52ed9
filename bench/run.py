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

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--sections", default="transform,sink,e2e,batching,original,scale,rekey")
parser.add_argument("--messages", type=int, default=20_000,
                    help="messages per end-to-end run, the same for every consumer")
parser.add_argument("--concurrency", default="1,4")
parser.add_argument("--consumers", default="ceiling,maskflow,boto3,vector",
                    help="end-to-end consumers, each run at every concurrency on the same message count")
parser.add_argument("--sink-batches", default="100,500,1000,10000",
                    help="sink batch sizes; 500 is the host's default --batch-size (the headline)")
parser.add_argument("--original-messages", type=int, default=1_000)
parser.add_argument("--scale", default="10000,100000,1000000", help="message counts for the scaling runs")
parser.add_argument("--rekey-rows", type=int, default=1_000_000, help="rows re-masked by the rekey run")
parser.add_argument("--scale-concurrency", type=int, default=4)
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
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


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
            "localstack": "localstack-core 2026.3.0 (host mode, SQS only)", "python": platform.python_version()}


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
    done = next(json.loads(l) for l in err.splitlines() if '"done"' in l)["fields"]
    rows, rejected, ledger = count(db, "user_logins"), count(db, "user_logins_rejected"), count(db, "maskflow_ledger")
    if rows + rejected != n or ledger != n:
        raise SystemExit(f"bench: exactly-once violated: {rows} rows + {rejected} rejected, ledger {ledger}, sent {n}")
    # The host's phases (module_s, commit_s) under the names results.json has always used.
    stages = {"receive_s": done["receive_s"], "transform_s": done["module_s"], "write_s": done["commit_s"], "delete_s": done["delete_s"]}
    return {**measured, "messages": n, "msg_per_s": n / measured["wall_s"], "rows": rows, "rejected": rejected, "stages": stages,
            **({"startup_cpu_s": startup} if startup else {})}


def ceiling_run(url, n, concurrency):
    out, _, measured = run_measured([BENCH, "ceiling", "--concurrency", str(concurrency), "--queue-url", url])
    got = json.loads(out)
    if got["messages"] != n or not got["pipelined"]:
        raise SystemExit(f"bench: the pipelined ceiling consumer saw {got['messages']} of {n} messages")
    return {**measured, "messages": n, "msg_per_s": n / measured["wall_s"], "pipelined": True}


def python_run(script, url, n, extra):
    db = fresh_database()
    out, _, measured = run_measured([PY, os.path.join(BASELINES, script), "--queue-url", url, "--database-url", db,
                                     "--key-file", args.key_file, *extra])
    got = json.loads(out)
    if got["messages"] != n:
        raise SystemExit(f"bench: {script} handled {got['messages']} of {n} messages")
    return {**measured, "messages": n, "msg_per_s": n / measured["wall_s"], "rows": got["rows"]}


def section_e2e():
    """Every consumer on the same message count at every concurrency, one after the other on
    fresh queues filled by the same generator: the ceiling (receive and delete only, pipelined),
    maskflow, the boto3 consumer and Vector."""
    runs = results.setdefault("e2e", {})
    runs.update({"date": now(), "messages": args.messages, "runs": []})
    results.pop("vector", None)  # measured here now, in the same run
    kinds = args.consumers.split(",")
    vector = find_vector() if "vector" in kinds else None
    if "vector" in kinds and not vector:
        log("e2e: vector SKIPPED: no vector binary (MASKFLOW_VECTOR_BIN, <repo>/../shared/bin/vector, PATH)")
        kinds.remove("vector")
    if vector:
        runs["vector_version"] = subprocess.run([vector, "--version"], capture_output=True, text=True,
                                                check=True).stdout.strip()
    n = args.messages
    for c in [int(c) for c in args.concurrency.split(",")]:
        for kind in kinds:
            url = fresh_queue(f"bench-{kind}-{c}")
            send_rate = fill(url, n, seed=c)
            log(f"e2e: {kind} at concurrency {c}, {n} messages (filled at {send_rate:.0f} msg/s)")
            if kind == "ceiling":
                r = ceiling_run(url, n, c)
            elif kind == "maskflow":
                r = maskflow_run(url, n, c)
            elif kind == "boto3":
                r = python_run("boto3_consumer.py", url, n, ["--endpoint-url", ENDPOINT, "--concurrency", str(c)])
            else:
                r = vector_run(vector, url, n, c)
            sqs.delete_queue(QueueUrl=url)
            r["cpu_ms_per_msg"] = r["cpu_s"]["self"] * 1000 / n
            runs["runs"].append({"kind": kind, "concurrency": c, "send_msg_per_s": send_rate, **r})
            if "startup_cpu_s" in r:
                log(f"  start-up CPU s: {r['startup_cpu_s']}")
            log(f"  {r['msg_per_s']:.0f} msg/s, {r['cpu_ms_per_msg']:.3f} ms CPU/msg, "
                f"peak RSS {r['peak_rss_kb'] / 1024:.0f} MiB")
            save()


def find_vector():
    """As the live test finds it: MASKFLOW_VECTOR_BIN, else <repo>/../shared/bin/vector, else PATH."""
    if os.environ.get("MASKFLOW_VECTOR_BIN"):
        return os.environ["MASKFLOW_VECTOR_BIN"]
    shared = os.path.join(REPO, "..", "shared", "bin", "vector")
    return shared if os.path.isfile(shared) else shutil.which("vector")


def vector_run(vector, url, n, concurrency):
    """vector/vector.yaml with `client_concurrency` SQS receive loops (the counterpart of the
    host's --concurrency) on a filled queue. Vector never stops by itself when the queue is
    empty, so the run ends when the tables hold every message: wall time is spawn to that
    moment (start-up included, as in `maskflow run`), CPU the vector process's own (all its
    threads, from /proc) and the services' over the same interval."""
    db = fresh_database()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(open(os.path.join(REPO, "vector", "tables.sql")).read())
    work = tempfile.mkdtemp(prefix="maskflow-bench-vector-")
    try:
        config = open(os.path.join(REPO, "vector", "vector.yaml")).read()
        source = "    type: aws_sqs\n"
        if config.count(source) != 1:
            raise SystemExit("bench: vector/vector.yaml has no single `type: aws_sqs` line to add client_concurrency to")
        config_file = os.path.join(work, "vector.yaml")
        open(config_file, "w").write(config.replace(source, f"{source}    client_concurrency: {concurrency}\n"))
        global_file = os.path.join(work, "global.yaml")
        os.mkdir(os.path.join(work, "data"))
        open(global_file, "w").write(f"data_dir: {json.dumps(os.path.join(work, 'data'))}\n")
        env = {**os.environ, "MASKFLOW_QUEUE_URL": url, "DATABASE_URL": db, "MASKFLOW_KEY": open(args.key_file).read(),
               "VECTOR_LOG": "warn", "VECTOR_COLOR": "never"}
        log_file = os.path.join(work, "vector.log")
        before = services_cpu()
        started = time.monotonic()
        with open(log_file, "w") as log_out:
            proc = subprocess.Popen([vector, "--config", config_file, "--config", global_file], cwd=REPO, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_out)
        try:
            deadline = started + max(120, n / 50)  # far beyond Vector's measured ~1,000 msg/s
            done = 0
            while done < n:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = open(log_file).read()[-3000:]
                    raise SystemExit(f"bench: vector wrote {done} of {n} messages and "
                                     f"{'exited' if proc.poll() is not None else 'timed out'}:\n{tail}")
                time.sleep(0.1)
                done = count(db, "user_logins") + count(db, "user_logins_rejected")
            wall = time.monotonic() - started
            after = services_cpu()
            cpu_self = proc_cpu(proc.pid)
            rss_kb = next(int(l.split()[1]) for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmHWM:"))
            time.sleep(2)  # a batch written twice would show now
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        rows, rejected = count(db, "user_logins"), count(db, "user_logins_rejected")
        if rows + rejected != n:
            raise SystemExit(f"bench: vector wrote {rows} rows + {rejected} rejected for {n} messages")
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
        left = sum(int(v) for v in attrs["Attributes"].values())
        if left:
            raise SystemExit(f"bench: vector left {left} messages in the queue (not acknowledged)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cpu = {"self": cpu_self, **{k: after[k] - before[k] for k in after}}
    return {"wall_s": wall, "peak_rss_kb": rss_kb, "cpu_s": cpu, "messages": n, "msg_per_s": n / wall,
            "cpu_ms_per_msg": cpu_self * 1000 / n, "rows": rows, "rejected": rejected}


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


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


results["machine"] = machine()
save()
for name in args.sections.split(","):
    {"transform": section_transform, "sink": section_sink, "e2e": section_e2e,
     "original": section_original, "scale": section_scale, "batching": section_batching,
     "rekey": section_rekey}[name]()
log(f"results in {args.results}")
