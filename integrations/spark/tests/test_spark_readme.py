"""The README's blocks run as pasted (testkit.run_readme's convention): spark-submit included."""

from __future__ import annotations

import sys

from testkit import REPO, readme_blocks, run_readme

README = REPO / "integrations" / "spark" / "README.md"


def test_the_readme_runs_as_pasted_and_prints_what_it_shows(tmp_path):
    printed = run_readme(README, tmp_path, env={"PYSPARK_PYTHON": sys.executable})[-1].splitlines()  # the python block's
    python = next(code for language, runs, code in readme_blocks(README) if language == "python" and runs)
    shown = [line[2:] for line in python.splitlines() if line.startswith("# ")]
    assert printed == shown
    assert not list(tmp_path.glob("masked.incomplete-*"))
