"""`scripts/test-readmes --self-test`: the runner must go red where a README is broken, so a green
run of the real READMEs means something. Each case is a small README written to a temporary
directory and run by the runner itself, in a process of its own, as scripts/test runs it; the
case states the exit status and the report lines it must print."""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

F = "```"

CASES = [
    ("a failing command fails its block and names its README line; later blocks are not run",
     f"# t\n{F}sh\necho fine\nmaskflow run --drian\necho never\n{F}\n{F}sh\necho after\n{F}\n",
     1, [r"README\.md:2 FAILED \([0-9.]+ s, exit 2 at \S*README\.md:4\)",
         r"\| error: unexpected argument '--drian'",
         r"README\.md:7 skipped \(not run: \S*README\.md:2 failed\)"]),
    ("blocks of one README share a session: exports and cd carry over",
     f"# t\n{F}sh\nexport GREETING=hello\nmkdir sub && cd sub\n{F}\n"
     f"{F}sh\ntest \"$GREETING\" = hello\ntest \"$(basename \"$PWD\")\" = sub\n{F}\n",
     0, [r"README\.md:2 ok", r"README\.md:6 ok"]),
    ("an unset variable fails the block (set -u)",
     f"# t\n{F}sh\necho \"$NOT_SET_ANYWHERE\"\n{F}\n", 1, [r"README\.md:2 FAILED"]),
    ("a failure inside a pipeline fails the block (pipefail)",
     f"# t\n{F}sh\nfalse | cat\n{F}\n", 1, [r"README\.md:2 FAILED"]),
    ("a block past its time limit fails",
     f"# t\n{F}sh timeout=1\nsleep 30\n{F}\n", 1, [r"README\.md:2 FAILED \(.*timed out after 1 s"]),
    ("a no-run block is skipped with the reason its first line gives",
     f"# t\n{F}sh no-run\n# needs the moon\nexit 1\n{F}\n", 0, [r"README\.md:2 skipped \(no-run: needs the moon\)"]),
    ("a block whose program is missing is skipped, never passed; one whose program is there runs",
     f"# t\n{F}sh requires=no-such-program-anywhere\nexit 1\n{F}\n{F}sh requires=bash\necho here\n{F}\n",
     0, [r"README\.md:2 skipped \(requires no-such-program-anywhere: not found on PATH\)", r"README\.md:5 ok"]),
    ("a no-run block without a reason is refused",
     f"# t\n{F}sh no-run\nexit 1\n{F}\n", 1, [r"README\.md:2 FAILED \(convention: a no-run block"]),
    ("a fence without a language is refused",
     f"# t\n{F}\nmaskflow run\n{F}\n", 1, [r"README\.md:2 FAILED \(convention: a fence without a language"]),
    ("a sql block without an engine is refused",
     f"# t\n{F}sql\nSELECT 1;\n{F}\n", 1, [r"README\.md:2 FAILED \(convention: a sql block names its engine"]),
    ("JSON that does not parse fails; JSON lines that do pass",
     f"# t\n{F}json\n{{\"a\": 1,}}\n{F}\n{F}json\n{{\"a\": 1}}\n{{\"b\": 2}}\n{F}\n",
     1, [r"README\.md:2 FAILED \(not JSON", r"README\.md:5 ok \(json parses\)"]),
    ("YAML that does not parse fails",
     f"# t\n{F}yaml\na: [1, 2\n{F}\n", 1, [r"README\.md:2 FAILED \(not YAML"]),
    ("psql stops at the first SQL error",
     f"# t\n{F}sql psql\nSELECT * FROM no_such_table_anywhere;\n{F}\n", 1, [r"README\.md:2 FAILED"]),
    # One case for both engines of the integrations venv: each case pays for a venv (~5 s).
    ("python runs in the session's directory; chDB keeps a README's tables from block to block; "
     "a SQL error fails",
     f"# t\n{F}sh\necho 7 > answer.txt\n{F}\n{F}python\nassert open('answer.txt').read() == '7\\n'\n{F}\n"
     f"{F}sql chdb\nCREATE TABLE t (a Int32) ENGINE = MergeTree ORDER BY a;\n"
     f"INSERT INTO t SELECT toInt32(line) FROM file('answer.txt', 'LineAsString');\n{F}\n"
     f"{F}sql chdb\nSELECT throwIf(sum(a) != 7) FROM t;\n{F}\n{F}sql chdb\nSELECT * FROM no_such_table;\n{F}\n",
     1, [r"README\.md:5 ok", r"README\.md:8 ok", r"README\.md:12 ok", r"README\.md:15 FAILED"]),
    ("a change to what `scripts/services env` says fails the run",
     f"# t\n{F}sh\necho 'export MASKFLOW_SELFTEST=1' >> \"$MASKFLOW_STATE/services.env\"\n{F}\n",
     1, [r"services FAILED", r"\+ export MASKFLOW_SELFTEST=1"]),
    ("a file written into the checkout fails the run",
     f"# t\n{F}sh\ntouch \"$(dirname \"$(dirname \"$(realpath scripts/test)\")\")/left-by-a-readme\"\n{F}\n",
     1, [r"checkout FAILED", r"\?\? left-by-a-readme"]),
]


def state_file():
    """The services' env file (scripts/services env names the state directory), or None."""
    done = subprocess.run([str(Path(__file__).resolve().parents[1] / "services"), "env"],
                          capture_output=True, text=True)
    state = re.search(r"^export MASKFLOW_STATE=(\S+)$", done.stdout, re.M)
    return Path(state.group(1)) / "services.env" if state else None


def run(runner):
    failures = 0
    with tempfile.TemporaryDirectory(prefix="maskflow-readme-selftest-") as tmp:
        for number, (title, markdown, status, patterns) in enumerate(CASES, start=1):
            readme = Path(tmp) / f"case{number}" / "README.md"
            readme.parent.mkdir()
            readme.write_text(markdown, encoding="utf-8")
            services_env = state_file()
            saved = services_env.read_bytes() if services_env else None
            done = subprocess.run([sys.executable, runner, "--discard", str(readme)], capture_output=True, text=True)
            if saved is not None:
                services_env.write_bytes(saved)  # a case may have changed it on purpose
            missing = [p for p in patterns if not re.search(p, done.stdout)]
            ok = done.returncode == status and not missing
            failures += not ok
            print(f"self-test {'ok' if ok else 'FAILED'}: {title}")
            if not ok:
                print(f"    exit {done.returncode} (expected {status}); missing: {missing}")
                for line in (done.stdout + done.stderr).splitlines():
                    print(f"    | {line}")
            # Whatever a case left in the checkout is not the next case's.
            Path(runner).resolve().parent.parent.joinpath("left-by-a-readme").unlink(missing_ok=True)
    return 1 if failures else 0
