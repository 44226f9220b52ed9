"""Data blocks (```json, ```yaml) are checked for syntax instead of run: cheap, and it catches a
pasted example that no parser would take."""

import json


def check_json(text):
    """One JSON document, or one per non-blank line (NDJSON, as the golden vectors and outcomes are
    shown). Returns None, or what is wrong."""
    try:
        json.loads(text)
        return None
    except json.JSONDecodeError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) < 2:
            return f"not JSON: {whole}"
        for n, line in lines:
            try:
                json.loads(line)
            except json.JSONDecodeError as error:
                return f"neither one JSON document ({whole}) nor one per line (line {n}: {error})"
        return None


def check_yaml(text):
    """Every YAML document in the block parses. Returns None, or what is wrong."""
    try:
        import yaml  # PyYAML: Debian's python3-yaml, which deploy/prometheus/test installs before us
    except ImportError:
        return "cannot check: PyYAML is missing (apt-get install python3-yaml)"
    try:
        list(yaml.safe_load_all(text))
        return None
    except yaml.YAMLError as error:
        return f"not YAML: {error}"
