"""One bash session per README: its blocks run in it in order, as a user pastes them one after another.

The session is a single `bash` process reading commands on its stdin. Each block is written to a
file and `source`d, so `cd`, variables and functions carry over to the next block, exactly as in a
terminal; `set -euo pipefail` is on, so a failing command ends the session (and the README).
A block's output goes to its own file; after it, the session prints a marker line on stdout, which
is how the runner knows the block finished. No marker before end of file: the block failed and
the session exited with its status.
"""

import os
import selectors
import shlex
import signal
import subprocess
import time

DONE = "__maskflow_readme_block_done__"


class Outcome:
    def __init__(self, ok, seconds, output, why=""):
        self.ok, self.seconds, self.output, self.why = ok, seconds, output, why


class Session:
    def __init__(self, cwd, env):
        # A process group of its own, so a timeout ends whatever the block started too.
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)

    def run(self, command, output_path, timeout_s):
        """Runs one command line (a block's `source`, or an interpreter on it) with its output in
        `output_path`; returns an Outcome."""
        start = time.monotonic()
        quoted = shlex.quote(str(output_path))
        # stdin is /dev/null: a pasted block does not read the terminal (and must not read ours).
        self._send(f"{command} </dev/null >{quoted} 2>&1\necho {DONE}\n")
        status = self._wait_done(timeout_s)
        seconds = time.monotonic() - start
        output = read_text(output_path)
        if status == "done":
            return Outcome(True, seconds, output)
        if status == "timeout":
            self.close(wait_s=0)  # the block still runs: no point waiting for the session to end
            return Outcome(False, seconds, output, f"timed out after {timeout_s} s")
        code = self.process.wait()
        return Outcome(False, seconds, output, f"exit {code}")

    def _send(self, text):
        try:
            self.process.stdin.write(text)
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the session already ended; _wait_done sees its end of file

    def _wait_done(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return "timeout"
                line = self.process.stdout.readline()
                if not line:
                    return "exited"
                if line.strip() == DONE:
                    return "done"

    def close(self, wait_s=5):
        """Ends the session (end of input, then `wait_s` for it to exit) and anything it left
        running (its process group: SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def read_text(path):
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
