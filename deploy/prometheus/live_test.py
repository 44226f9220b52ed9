"""Live test of alerts.yaml and deploy/grafana/maskflow.json in a real Prometheus.

A Prometheus (Debian's, on a free localhost port) scrapes a running `maskflow run` every
second while it drains a queue, through a PostgreSQL outage (scripts/services stop-pg) during
which a purge of the queue makes SQS refuse the host's visibility and delete entries. Then:

1. MaskflowPostgresRetrying went pending, then firing after its `for:`, and was not active
   before the outage (Prometheus' own ALERTS series, so a slow poll cannot miss a state);
2. every rule evaluated without error (/api/v1/rules);
3. every query of every dashboard panel returns at least one series with a number in it over
   the run (no panel is empty);
4. every alert's expression, in its `bool` form (each comparison yields 0 or 1 instead of
   filtering), returns at least one series: every series an alert reads exists, with the
   labels it matches, so no alert is blind.

The rules Prometheus loads are alerts.yaml with one mechanical change, every `for:` divided
by 60 (10m -> 10s: promrules.fast_copy), so that firing takes seconds; the real `for:`
durations are tested by the promtool unit tests. Run by deploy/prometheus/test, which starts
the services and sets their variables. Usage: live_test.py MASKFLOW_BINARY"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "grafana"))

import check_dashboard  # noqa: E402
import local_services as svc  # noqa: E402
import promrules  # noqa: E402
from prom_server import Prometheus, finite_points, free_port, wait_until  # noqa: E402

OUTAGE_ALERT = "MaskflowPostgresRetrying"
SCHEMA = "prometheus_live_test"
BEFORE, DURING = 3000, 1000  # messages sent before and during the outage
# Seconds for any one step; generous: a loaded 2-core machine is slow.
TIMEOUT = int(os.environ.get("MASKFLOW_PROMETHEUS_TEST_TIMEOUT", "300"))
# Grafana's interval variables, as Grafana would set them with a 1 s scrape interval.
GRAFANA_VARIABLES = {"$__rate_interval": "4s", "$__interval": "1s"}


def log(message):
    print(f"live: {message}", file=sys.stderr, flush=True)


class Host:
    """`maskflow run` (no --drain: it keeps running through the outage) with /metrics on."""

    def __init__(self, binary, workdir, queue_url):
        self.metrics = f"127.0.0.1:{free_port()}"
        self.log = Path(workdir) / "maskflow.log"
        key = Path(workdir) / "maskflow.key"
        svc.run([binary, "keygen", "--out", str(key)])
        self.command = [
            binary, "run", "--queue-url", queue_url, "--schema", SCHEMA, "--key-file", str(key),
            "--metrics-addr", self.metrics, "--stats-interval", "1s", "--log-format", "json",
            # Extensions every 3 s: the outage shows SQS' refusals within seconds.
            "--visibility-timeout-secs", "6"]
        self.process = None

    def start(self):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MASKFLOW_QUEUE_")}
        self.process = subprocess.Popen(self.command, env=environment, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"))

    def alive(self):
        if self.process.poll() is not None:
            raise AssertionError(f"maskflow run exited with {self.process.returncode} (log: {self.log})")
        return True

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("maskflow run did not stop within 120 s of SIGTERM")


def send(binary, queue_url, count, seed):
    """`maskflow send --generate`: 2% of the messages are malformed (rejections to see)."""
    svc.run([binary, "send", "--queue-url", queue_url, "--generate", str(count), "--seed", str(seed)])


def alert_states(prom, name):
    """Current state of alert `name` from /api/v1/alerts ('pending', 'firing' or None)."""
    states = {a["state"] for a in prom.api("alerts")["alerts"] if a["labels"].get("alertname") == name}
    return "firing" if "firing" in states else ("pending" if "pending" in states else None)


def first_sample(prom, name, state, window):
    """Timestamp of the first ALERTS sample of alert `name` in `state` within `window` s."""
    result = prom.query(f'ALERTS{{alertname="{name}",alertstate="{state}"}}[{window}s]')
    return min((float(t) for s in result for t, _ in s["values"]), default=None)


def check_outage_alert(prom, host, outage_started, started, for_s):
    seen = []  # the states /api/v1/alerts showed, in order: for the log

    def state():
        host.alive()
        now = alert_states(prom, OUTAGE_ALERT)
        if now and (not seen or seen[-1] != now):
            seen.append(now)
            log(f"{OUTAGE_ALERT}: {now}")
        return now
    wait_until(f"{OUTAGE_ALERT} pending", TIMEOUT, lambda: state() in ("pending", "firing"))
    wait_until(f"{OUTAGE_ALERT} firing", TIMEOUT, lambda: state() == "firing")
    window = int(time.time() - started) + 5
    pending = first_sample(prom, OUTAGE_ALERT, "pending", window)
    firing = first_sample(prom, OUTAGE_ALERT, "firing", window)
    assert pending is not None and firing is not None, f"ALERTS lacks a state: pending {pending}, firing {firing}"
    assert outage_started <= pending, f"{OUTAGE_ALERT} was pending at {pending}, before the outage at {outage_started}"
    assert firing - pending >= for_s, f"{OUTAGE_ALERT} fired {firing - pending:.1f} s after pending, before its for: {for_s} s"
    log(f"{OUTAGE_ALERT}: pending {pending - outage_started:.1f} s after the outage began, "
        f"firing {firing - pending:.1f} s later (for: {for_s} s); states seen through the API: {seen}")


def check_rules_healthy(prom, alert_names):
    rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
    loaded = {r["name"] for r in rules if r["type"] == "alerting"}
    assert loaded == alert_names, f"Prometheus loaded alerts {sorted(loaded)}, alerts.yaml has {sorted(alert_names)}"
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, f"rules not healthy: {bad}"


def expand_grafana(expr):
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"{expr}: a Grafana variable the live test does not know"
    return expr


def check_queries(prom, start, end, doc):
    """Every dashboard query and every alert's bool form returns a series with a number."""
    queries = [(f"panel '{title}' {ref}", expand_grafana(expr)) for title, ref, expr in check_dashboard.dashboard_queries()]
    queries += [(f"alert {r['alert']} (bool form)", promrules.bool_form(r["expr"])) for r in promrules.alerts(doc)]
    empty = []
    for what, expr in queries:
        result = prom.query_range(expr, start, end)
        points = finite_points(result)
        labels = sorted({",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())) for r in result} - {""})
        shown = f" [{'; '.join(labels[:4])}{'; ...' if len(labels) > 4 else ''}]" if labels else ""
        log(f"{'ok   ' if points else 'EMPTY'} {what}: {len(result)} series{shown}, {points} points  "
            f"{' '.join(expr.split())}")
        if not points:
            empty.append(what)
    assert not empty, f"no data in a real run for: {empty}"
    return len(queries)


def main(binary):
    doc = promrules.load()
    fast, changed = promrules.fast_copy(doc)
    for_s = promrules.parse_duration_ms(dict((a, new) for a, _, new in changed)[OUTAGE_ALERT]) / 1000
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="maskflow-prometheus-") as workdir:
        rules = Path(workdir) / "alerts.fast.yaml"
        promrules.save(fast, rules)
        log("rules loaded: alerts.yaml with for: " + ", ".join(f"{a} {old}->{new}" for a, old, new in changed))
        queue = svc.create_queue(f"maskflow-prometheus-test-{os.getpid()}")
        svc.psql(f"drop schema if exists {SCHEMA} cascade")
        host = prom = None
        pg_down = False
        try:
            # Prometheus first, so that it sees every counter start at 0.
            host = Host(binary, workdir, queue)
            prom = Prometheus(workdir, host.metrics, rules)
            prom.start(TIMEOUT)
            host.start()
            wait_until("the first scrape of the host", TIMEOUT,
                       lambda: host.alive() and prom.value('up{job="maskflow"}') == 1)
            send(binary, queue, BEFORE, seed=11)
            log(f"prometheus on {prom.url} scraping maskflow on {host.metrics}; draining {BEFORE} messages")
            wait_until(f"{BEFORE} messages committed and deleted", TIMEOUT,
                       lambda: host.alive() and (prom.value("sum(maskflow_messages_deleted_total)") or 0) >= BEFORE)

            outage_started = time.time()
            svc.services("stop-pg")
            pg_down = True
            send(binary, queue, DURING, seed=12)
            log(f"PostgreSQL stopped; {DURING} more messages sent")
            wait_until("the host holding messages and retrying its commit", TIMEOUT,
                       lambda: host.alive() and (prom.value("sum(maskflow_messages_in_flight)") or 0) > 0
                       and (prom.value('sum(maskflow_retries_total{kind="postgres"})') or 0) > 0)
            # The host holds them and extends their visibility; purged, SQS refuses those entries.
            svc.sqs("PurgeQueue", QueueUrl=queue)
            wait_until("SQS refusing entries after the purge", TIMEOUT,
                       lambda: host.alive() and (prom.value("sum(maskflow_sqs_entry_failures_total)") or 0) > 0)
            check_outage_alert(prom, host, outage_started, started, for_s)

            back = time.time()
            svc.services("start-pg")
            pg_down = False
            log("PostgreSQL started again")
            wait_until("a commit after the outage, and nothing held", TIMEOUT,
                       lambda: host.alive() and (prom.value("max(maskflow_last_commit_timestamp_seconds)") or 0) > back
                       and prom.value("sum(maskflow_messages_in_flight)") == 0)
            # One more scrape and evaluation after the last commit.
            end = time.time() + 2
            wait_until("the last scrape", TIMEOUT, lambda: time.time() >= end)
            check_rules_healthy(prom, {r["alert"] for r in promrules.alerts(doc)})
            count = check_queries(prom, started, end, doc)
            log(f"ok: {count} queries returned data, {OUTAGE_ALERT} went pending then firing "
                f"({time.time() - started:.0f} s)")
        except Exception:
            for path in (host and host.log, prom and prom.log):
                if path and path.exists():
                    log(f"last lines of {path.name} (diagnosis only):\n" + "\n".join(path.read_text().splitlines()[-15:]))
            raise
        finally:
            if pg_down:
                svc.services("start-pg")
            if host:
                host.stop()
            if prom:
                prom.stop()
            svc.sqs("DeleteQueue", QueueUrl=queue)
            svc.psql(f"drop schema if exists {SCHEMA} cascade")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[-1])
    sys.exit(main(sys.argv[1]))
