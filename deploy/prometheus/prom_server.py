"""A throw-away Prometheus server (Debian's `prometheus` binary) on a free localhost port, and
the few HTTP API calls the live test needs."""

import json
import math
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, timeout, check, every=0.5):
    """Polls `check` until it returns something truthy, which is returned; fails after
    `timeout` seconds naming `what`. Sleeps only to poll, never as an assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Prometheus:
    """Scrapes `target` every second and evaluates `rules` every second."""

    def __init__(self, workdir, target, rules, job="maskflow"):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.workdir / "prometheus.yml"
        self.log = self.workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        }
        self.config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.process = None

    def start(self, timeout):
        check = subprocess.run([shutil.which("promtool") or "promtool", "check", "config", str(self.config)],
                               capture_output=True, text=True)
        assert check.returncode == 0, f"promtool check config:\n{check.stdout}{check.stderr}"
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), stdin=subprocess.DEVNULL)

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False
        wait_until(f"prometheus ready on {self.url}", timeout, ready)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr, at=None):
        params = {"query": expr} if at is None else {"query": expr, "time": at}
        return self.api("query", **params)["result"]

    def value(self, expr):
        """The single value of a scalar-valued query, or None while it has no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr, start, end, step=1):
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]


def finite_points(series):
    """How many of a range result's points are numbers (not NaN, not infinite)."""
    return sum(1 for s in series for _, v in s["values"] if math.isfinite(float(v)))
