"""Writing metric tables as JSON and Markdown."""

from __future__ import annotations

import math
import os

from ..data.io import save_json


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], output_dir: str, name: str = "metrics", title: str = "", extra: dict | None = None) -> dict:
    """Write ``<name>.json`` (rows plus ``extra``) and ``<name>.md``; return their paths."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = save_json({"rows": rows, **(extra or {})}, os.path.join(output_dir, f"{name}.json"))
    md_path = os.path.join(output_dir, f"{name}.md")
    with open(md_path + ".part", "w") as f:
        f.write((f"# {title}\n\n" if title else "") + markdown_table(rows))
    os.replace(md_path + ".part", md_path)
    return {"json": json_path, "markdown": md_path}
