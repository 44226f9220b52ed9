"""The alert rules file as data, for deploy/prometheus/test: its alerts, their `for:`
durations, and the rule files derived from it mechanically (mutants for the unit tests, a
fast copy for the live test)."""

import copy
import re
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "alerts.yaml"
TESTS = HERE / "tests"

# Prometheus' duration syntax (model.ParseDuration): units in decreasing order, each at most once.
_UNITS = [("y", 365 * 86400_000), ("w", 7 * 86400_000), ("d", 86400_000), ("h", 3600_000),
          ("m", 60_000), ("s", 1000), ("ms", 1)]
_DURATION = re.compile("".join(rf"(?:(\d+){u})?" for u, _ in _UNITS))


def parse_duration_ms(text):
    """'1h30m' -> 5400000. Raises ValueError on anything Prometheus would refuse."""
    match = _DURATION.fullmatch(str(text))
    if not text or not match or not any(match.groups()):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * ms for n, (_, ms) in zip(match.groups(), _UNITS) if n)


def format_duration_ms(ms):
    """5400000 -> '1h30m' (what parse_duration_ms reads back)."""
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)


def load(path=RULES):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def save(doc, path):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=1000)


def alerts(doc):
    """Every alerting rule of every group (recording rules are not alerts)."""
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def for_ms(rule):
    return parse_duration_ms(rule["for"]) if "for" in rule else 0


def mutants(doc):
    """(alert, what was changed, mutated rules document) for every alert: each must make the
    unit tests fail, or the tests do not pin that part of the alert down."""
    for index, rule in enumerate(alerts(doc)):
        name = rule["alert"]

        def mutate(change, what):
            mutated = copy.deepcopy(doc)
            change(alerts(mutated)[index])
            return name, what, mutated

        yield mutate(lambda r: r.update(expr="vector(0) > 1"), "never fires (no test expects it to fire)")
        # Where the real expression returns nothing, the mutant returns a series of its own (a
        # label of its own: a separate alert, so it does not shift when the real one started).
        yield mutate(lambda r: r.update(
            expr=f'({r["expr"].strip()}) or on() label_replace(vector(1), "mutant", "silent", "", "")'),
                     "fires whenever it should stay silent (no test expects it not to fire)")
        if for_ms(rule):
            yield mutate(lambda r: r.pop("for"),
                         "fires without waiting for its `for:` (no test checks it is still silent just before)")
        yield mutate(lambda r: r.update({"for": format_duration_ms(for_ms(r) + 60_000)}),
                     "fires 1 minute later than its `for:` says (no test checks it fires on time)")


def fast_copy(doc, factor=60):
    """The rules with every `for:` divided by `factor` (10m -> 10s), and nothing else changed:
    what the live test loads, so that pending -> firing takes seconds. Returns the document
    and the list of (alert, old for, new for)."""
    fast = copy.deepcopy(doc)
    changed = []
    for rule in alerts(fast):
        if "for" in rule:
            new = format_duration_ms(max(1000, for_ms(rule) // factor))
            changed.append((rule["alert"], rule["for"], new))
            rule["for"] = new
    return fast, changed


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*bool\b)?")


def bool_form(expr):
    """The expression with every comparison made a `bool` one (`x > 300` -> `x > bool 300`):
    it then returns a sample, 0 or 1, for every series the comparison reads, whatever the
    values. Label matchers ({a!="b"}) and strings are left alone."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c in "{\"'`":
            close = {"{": "}", '"': '"', "'": "'", "`": "`"}[c]
            end = i + 1
            while end < len(expr) and expr[end] != close:
                end += 2 if expr[end] == "\\" and c != "{" else 1
            out.append(expr[i:end + 1])
            i = end + 1
            continue
        match = _COMPARISON.match(expr, i)
        if match:
            out.append(match.group(0) if match.group(2) else f"{match.group(1)} bool ")
            i = match.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)
