"""The README's blocks run as pasted (testkit.run_readme's convention) and print what it says."""

from __future__ import annotations

import re

from testkit import REPO, readme_blocks, run_readme

README = REPO / "integrations" / "python" / "README.md"


def test_the_readme_runs_as_pasted_and_prints_what_it_shows(tmp_path):
    printed = run_readme(README, tmp_path)[-1].splitlines()  # the python block's
    python = next(code for language, runs, code in readme_blocks(README) if language == "python" and runs)
    # The block's trailing comments show its output; `…` stands for the rest of a mask (the
    # key is a new one).
    shown = [line[2:] for line in python.splitlines() if line.startswith("# ")]
    assert len(printed) == len(shown), printed
    for got, want in zip(printed, shown):
        pattern = "[A-Za-z0-9_-]+".join(re.escape(part) for part in want.split("…"))
        assert re.fullmatch(pattern, got), (got, want)
