"""Helpers shared by the example stages: params and CSV files, read and written
the same way every time so that outputs are byte-for-byte reproducible."""

import csv
import json
from pathlib import Path


def params(section):
    """One section of params.yaml (a tiny reader: the example needs no PyYAML)."""
    values, current = {}, None
    for raw in Path("params.yaml").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line.startswith(" "):
            current = line.rstrip(":")
            continue
        if current == section:
            key, _, value = line.strip().partition(":")
            values[key] = json.loads(_as_json(value.strip()))
    return values


def _as_json(value):
    if value.startswith("["):
        items = [item.strip() for item in value.strip("[]").split(",")]
        return "[" + ",".join(_as_json(item) for item in items if item) + "]"
    try:
        float(value)
        return value
    except ValueError:
        return value if value in ("true", "false") else json.dumps(value)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(path, rows, fields):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_json(path, value):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=2, sort_keys=True)
    Path(path).write_text(text + "\n", encoding="utf-8")
