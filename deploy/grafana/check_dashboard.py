"""Static checks of deploy/grafana/maskflow.json for what Grafana needs to import it (Grafana
itself is not installable here; deploy/prometheus/test runs this, and its live part evaluates
every panel's query in a real Prometheus):

- a dashboard uid, title and integer schemaVersion;
- a datasource template variable of type `datasource` for Prometheus, and every panel and
  target using it (`${name}`), so the dashboard works with whatever the datasource is called;
- panel ids unique integers, panels inside the 24-column grid and not overlapping;
- every target a PromQL `expr` with a refId unique in its panel.

Importable: `dashboard_queries()` lists (panel title, refId, expr) for the live test."""

import json
import sys
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent / "maskflow.json"
GRID_COLUMNS = 24


def load(path=DASHBOARD):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard):
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard=None):
    dashboard = dashboard or load()
    return [(p.get("title", ""), t.get("refId", ""), t.get("expr", ""))
            for p in panels(dashboard) for t in p.get("targets", [])]


def datasource_variable(dashboard, problems):
    variables = [v for v in dashboard.get("templating", {}).get("list", [])
                 if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if len(variables) != 1:
        problems.append("templating needs exactly one variable of type datasource, query prometheus")
        return None
    return "${" + variables[0]["name"] + "}"


def uses_variable(datasource, reference):
    return (isinstance(datasource, dict) and datasource.get("uid") == reference
            and datasource.get("type") == "prometheus")


def check(dashboard):
    problems = []
    for key, kind in (("uid", str), ("title", str), ("schemaVersion", int)):
        if not isinstance(dashboard.get(key), kind) or dashboard.get(key) in ("", None):
            problems.append(f"dashboard {key} missing or not a {kind.__name__}")
    reference = datasource_variable(dashboard, problems)
    ids, cells = set(), {}
    for panel in panels(dashboard):
        name = f"panel {panel.get('id')} ({panel.get('title', 'untitled')})"
        if not isinstance(panel.get("id"), int) or panel["id"] in ids:
            problems.append(f"{name}: id missing, not an integer, or not unique")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        if not panel.get("title"):
            problems.append(f"{name}: no title")
        if reference and not uses_variable(panel.get("datasource"), reference):
            problems.append(f"{name}: datasource is not {{type: prometheus, uid: {reference}}}")
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k) for k in "xywh")
        if not all(isinstance(v, int) for v in (x, y, w, h)) or w <= 0 or h <= 0 or x < 0 or y < 0 \
                or x + w > GRID_COLUMNS:
            problems.append(f"{name}: gridPos {grid} is not inside the {GRID_COLUMNS}-column grid")
        else:
            for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
                if cell in cells:
                    problems.append(f"{name}: overlaps {cells[cell]}")
                    break
                cells[cell] = name
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{name}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{name}: refIds missing or repeated: {refs}")
        for target in targets:
            if not target.get("expr", "").strip():
                problems.append(f"{name} {target.get('refId')}: no expr")
            if reference and "datasource" in target and not uses_variable(target["datasource"], reference):
                problems.append(f"{name} {target.get('refId')}: datasource is not {reference}")
    return problems


def main():
    problems = check(load())
    for problem in problems:
        print(f"check_dashboard: FAIL {problem}")
    if problems:
        return 1
    print(f"check_dashboard: ok: {len(list(panels(load())))} panels, {len(dashboard_queries())} queries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
