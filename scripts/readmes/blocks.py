"""The fenced code blocks of a README, and what the convention says to do with each.

The info string after the opening fence says how a block runs (scripts/test-readmes, top):
its first word is the language, the words after it are attributes (`no-run`, `timeout=SECONDS`,
or the engine of a `sql` block).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

# Languages whose blocks run, and the attributes each accepts besides `no-run` and `timeout=`.
RUN_LANGUAGES = {"sh": set(), "bash": set(), "python": set(), "sql": {"psql", "chdb"}}
# Data: checked for syntax instead of run.
DATA_LANGUAGES = {"json", "yaml"}
# Not code (diagrams, sample output): neither run nor checked.
TEXT_LANGUAGES = {"text"}
# How a comment line starts, per language: a no-run block's first line says why, as a comment.
COMMENT = {"sh": "#", "bash": "#", "python": "#", "sql": "--", "yaml": "#"}
DEFAULT_TIMEOUT_S = 180

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


class ConventionError(Exception):
    """A block the runner cannot classify: the README must say how it runs."""

    def __init__(self, readme, line, problem):
        super().__init__(f"{readme}:{line}: {problem}")
        self.readme, self.line, self.problem = readme, line, problem


@dataclass
class Block:
    readme: str  # path relative to the repository, as reported
    line: int  # 1-based line of the opening fence
    language: str
    attributes: list = field(default_factory=list)
    text: str = ""

    @property
    def where(self):
        return f"{self.readme}:{self.line}"

    @property
    def no_run(self):
        return "no-run" in self.attributes

    @property
    def engine(self):
        """The named engine of a `sql` block (psql, chdb)."""
        engines = [a for a in self.attributes if a in RUN_LANGUAGES.get(self.language, ())]
        return engines[0] if engines else None

    @property
    def timeout_s(self):
        for a in self.attributes:
            if a.startswith("timeout="):
                return int(a.split("=", 1)[1])
        return DEFAULT_TIMEOUT_S

    @property
    def no_run_reason(self):
        """The block's first line, a comment, without its comment marker."""
        first = self.text.lstrip("\n").splitlines()[0] if self.text.strip() else ""
        marker = COMMENT.get(self.language)
        if marker and first.lstrip().startswith(marker):
            return first.lstrip()[len(marker):].strip()
        return None

    @property
    def run_by(self):
        """The test that runs this block instead of the runner (`run-by=integrations/fluvio/test`:
        it needs what that test sets up, a Fluvio cluster), or None."""
        return next((a.split("=", 1)[1] for a in self.attributes if a.startswith("run-by=")), None)

    @property
    def requires(self):
        """Programs the block needs that no registry carries (`requires=vector,fluvio`): where
        one is missing the block is reported skipped, never passed."""
        return [t for a in self.attributes if a.startswith("requires=") for t in a.split("=", 1)[1].split(",")]

    @property
    def kind(self):
        """'run', 'no-run', 'data' or 'text'."""
        if self.language in TEXT_LANGUAGES:
            return "text"
        if self.language in DATA_LANGUAGES:
            return "data"
        return "no-run" if self.no_run else "run"


def extract(path, name):
    """Every fenced block of the file at `path` (reported as `name`), and the ConventionErrors of
    those that break the convention."""
    blocks, errors, current, body, closing = [], [], None, [], None
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(line)
        if current is None:
            if match:
                info = match.group("info").strip().split()
                current = Block(name, number, info[0] if info else "", info[1:])
                closing, indent, body = match.group("fence"), len(match.group("indent")), []
            continue
        if match and match.group("fence").startswith(closing) and not match.group("info").strip():
            current.text = "\n".join(body) + "\n"
            try:
                blocks.append(check(current))
            except ConventionError as error:
                errors.append(error)
            current = None
        else:
            # Content is dedented by the opening fence's indentation, as CommonMark does.
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
    if current is not None:
        errors.append(ConventionError(name, current.line, "fence never closed"))
    return blocks, errors


def check(block):
    """Refuses a block whose info string does not say how it runs (so nothing is left out silently)."""
    known = set(RUN_LANGUAGES) | DATA_LANGUAGES | TEXT_LANGUAGES
    if not block.language:
        raise ConventionError(block.readme, block.line,
                              "a fence without a language: say how it runs (```sh, ```sql psql, ...) "
                              "or that it is not code (```text)")
    if block.language not in known:
        raise ConventionError(block.readme, block.line,
                              f"unknown language `{block.language}` (known: {', '.join(sorted(known))})")
    # Data and text are never run, so `no-run` would say nothing there.
    allowed = {"no-run"} | RUN_LANGUAGES[block.language] if block.language in RUN_LANGUAGES else set()
    for a in block.attributes:
        timeout = block.language in RUN_LANGUAGES and re.fullmatch(r"timeout=[1-9][0-9]*", a)
        requires = block.language in RUN_LANGUAGES and re.fullmatch(r"requires=[a-z0-9_,-]+", a)
        run_by = block.language in RUN_LANGUAGES and re.fullmatch(r"run-by=[A-Za-z0-9_./-]+", a)
        if a not in allowed and not timeout and not requires and not run_by:
            raise ConventionError(block.readme, block.line, f"unknown attribute `{a}` for `{block.language}`")
    if block.kind == "run" and block.language == "sql" and not block.engine:
        raise ConventionError(block.readme, block.line,
                              "a sql block names its engine: ```sql psql or ```sql chdb (or ```sql no-run)")
    if block.kind == "no-run" and not block.no_run_reason:
        raise ConventionError(block.readme, block.line,
                              f"a no-run block's first line is a comment ({COMMENT.get(block.language, '#')} ...) "
                              "telling the reader why it is not run")
    return block
