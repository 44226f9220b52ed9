"""Static checks of deploy/prometheus/alerts.yaml (deploy/prometheus/test runs them):

1. `promtool check rules` accepts the file;
2. `promtool test rules` passes every file in tests/;
3. every alert has its own test file, tests/<alert>.yaml, and every test names existing alerts;
4. the tests pin every alert down: each mutant of an alert (never fires; fires whenever it
   should be silent; fires without its `for:`; fires 1 minute late) makes them fail. An alert
   without a must-fire case, a must-not-fire case, or a check of its `for:` fails here;
5. every alert has a severity label, a summary, and a `runbook_url` README.md#anchor whose
   heading exists in README.md; every alert heading under README's alerts section is an alert;
6. every alert's `bool` form (what the live test evaluates) parses.

Exit 0 when all pass; prints what failed otherwise."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import promrules
import readme

PROMTOOL = shutil.which("promtool") or "promtool"


def promtool(*args, cwd=None):
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_files():
    return sorted(promrules.TESTS.glob("*.yaml"))


def check_promtool(problems):
    result = promtool("check", "rules", promrules.RULES)
    if result.returncode:
        problems.append(f"promtool check rules:\n{result.stdout}{result.stderr}")
    result = promtool("test", "rules", *test_files())
    if result.returncode:
        problems.append(f"promtool test rules:\n{result.stdout}{result.stderr}")


def check_test_files(names, problems):
    for name in names:
        if not (promrules.TESTS / f"{name}.yaml").is_file():
            problems.append(f"{name}: no unit tests (expected deploy/prometheus/tests/{name}.yaml)")
    for path in test_files():
        doc = promrules.load(path)
        if doc.get("rule_files") != ["../alerts.yaml"]:
            problems.append(f"{path.name}: rule_files must be [../alerts.yaml] (the real rules)")
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                if case.get("alertname") not in names:
                    problems.append(f"{path.name}: tests alert {case.get('alertname')!r}, which alerts.yaml lacks")


def check_mutants(doc, problems):
    """Runs the whole suite against each mutant in a scratch copy (tests/ beside a mutated
    alerts.yaml, so their `../alerts.yaml` finds it)."""
    with tempfile.TemporaryDirectory(prefix="maskflow-rules-") as scratch:
        scratch = Path(scratch)
        shutil.copytree(promrules.TESTS, scratch / "tests")
        files = [f"tests/{p.name}" for p in test_files()]
        mutants = list(promrules.mutants(doc))
        for index, (_, _, mutated) in enumerate(mutants):
            promrules.save(mutated, scratch / f"mutant-{index}.yaml")
        # A mutant promtool cannot load would fail the tests for the wrong reason.
        valid = promtool("check", "rules", *(scratch / f"mutant-{i}.yaml" for i in range(len(mutants))))
        if valid.returncode:
            problems.append(f"a mutant is not a valid rules file (check_rules.py bug):\n{valid.stdout}{valid.stderr}")
            return
        for index, (name, what, _) in enumerate(mutants):
            shutil.copy(scratch / f"mutant-{index}.yaml", scratch / "alerts.yaml")
            if promtool("test", "rules", *files, cwd=scratch).returncode == 0:
                problems.append(f"{name}: the unit tests still pass when it {what}")
        print(f"check_rules: {len(mutants)} mutants of {len(promrules.alerts(doc))} alerts run")


# bool_form (the live test's view of an alert) on cases written out by hand.
BOOL_FORMS = {
    'a{x!="y",z=~"p>q"} > 3': 'a{x!="y",z=~"p>q"} > bool  3',
    "a >= bool 2": "a >= bool 2",
    "a<=1 and b==2": "a<= bool 1 and b== bool 2",
    'label_replace(v, "d", "$1", "s", "(.*)>")>0': 'label_replace(v, "d", "$1", "s", "(.*)>")> bool 0',
}


def check_bool_forms(doc, problems):
    for expr, expected in BOOL_FORMS.items():
        if promrules.bool_form(expr) != expected:
            problems.append(f"bool_form({expr!r}) is {promrules.bool_form(expr)!r}, not {expected!r}")
    # Every alert's bool form must parse: as recording rules, promtool checks them.
    with tempfile.TemporaryDirectory(prefix="maskflow-bool-") as scratch:
        rules = [{"record": f"bool_form:{r['alert']}", "expr": promrules.bool_form(r["expr"])}
                 for r in promrules.alerts(doc)]
        path = Path(scratch) / "bool-forms.yaml"
        promrules.save({"groups": [{"name": "bool_forms", "rules": rules}]}, path)
        result = promtool("check", "rules", path)
        if result.returncode:
            problems.append(f"the alerts' bool forms do not parse:\n{result.stdout}{result.stderr}")


def check_annotations(doc, problems):
    anchors = readme.anchors()
    documented = readme.alert_headings()
    names = set()
    for rule in promrules.alerts(doc):
        name = rule["alert"]
        names.add(name)
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            problems.append(f"{name}: labels.severity must be warning or critical")
        notes = rule.get("annotations", {})
        if not notes.get("summary"):
            problems.append(f"{name}: no summary annotation")
        url = notes.get("runbook_url", "")
        page, _, anchor = url.partition("#")
        if page != "README.md" or not anchor:
            problems.append(f"{name}: runbook_url {url!r} is not README.md#<section>")
        elif anchor not in anchors:
            problems.append(f"{name}: runbook_url {url!r}: README.md has no heading with that anchor")
    for heading in sorted(documented - names):
        problems.append(f"README.md documents alert {heading!r}, which alerts.yaml lacks")


def main():
    problems = []
    doc = promrules.load()
    names = {rule["alert"] for rule in promrules.alerts(doc)}
    check_promtool(problems)
    check_test_files(names, problems)
    check_annotations(doc, problems)
    check_bool_forms(doc, problems)
    check_mutants(doc, problems)
    for problem in problems:
        print(f"check_rules: FAIL {problem}", file=sys.stdout)
    if problems:
        return 1
    print(f"check_rules: ok: {len(names)} alerts, {len(test_files())} test files, runbooks in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
