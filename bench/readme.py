"""``bench/README.md``, rendered from the records in ``bench/results/``: the prose is kept
as templates in ``bench/templates/`` (the intro and one section per benchmark), every
table, ratio and date/machine/versions line comes from the records. A record whose
benchmark has no template gets a generic section (its peers, ratios and figures as
tables), so a new benchmark shows up before anyone writes its prose.

Usage: ``python -m bench.readme`` (``make bench-readme``) writes the README;
``--check`` only says whether it is what the records make (exit 1 if not).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from bench.record import BENCH, RESULTS, records

README = BENCH / "README.md"
TEMPLATES = BENCH / "templates"
# the order of the sections; a benchmark not listed comes after these, by name
ORDER = ("ingest", "microbatch", "cdc", "apply", "engines", "forecast", "propositions")
ORDER += ("search", "api")
# the distributions named in a versions line, beside Python and the commit
_NOT_LIBRARIES = {"python", "commit", "work_tree_clean"}
_NONE = "\N{EN DASH}"  # a figure the run did not measure


def number(value: Any, digits: int = 0) -> str:
    """``value`` with thousands separators and ``digits`` decimals; a dash for none."""
    if value is None:
        return _NONE
    if isinstance(value, bool | str):
        return str(value)
    return f"{value:,.{digits}f}"


def seconds(value: float | None) -> str:
    """A duration as a figure worth its digits: 0.13 s, 7.4 s, 114 s."""
    if value is None:
        return _NONE
    return f"{value:,.{2 if value < 1 else 1 if value < 100 else 0}f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A markdown table; ``align`` one letter per column (``l`` or ``r``, default: the
    first column left, the others right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(record: Mapping[str, Any]) -> str:
    """When, on what and with what a record was measured, in one line."""
    if record.get("recorded_from"):
        when = record["date"][:10] if record.get("date") else "date not recorded"
        note = f" ({record['recorded_note']})" if record.get("recorded_note") else ""
        return (
            f"*Figures of {when}, converted from {record['recorded_from']}: the run was not "
            f"recorded with its machine and versions{note}.*"
        )
    date = datetime.fromisoformat(record["date"])
    m = record["machine"] or {}
    v = record["versions"] or {}
    libraries = ", ".join(
        f"{name} {version}"
        for name, version in v.items()
        if name not in _NOT_LIBRARIES and version is not None
    )
    commit = (v.get("commit") or "unknown")[:10]
    if v.get("work_tree_clean") is False:
        commit += " with changes"
    return (
        f"*{date:%Y-%m-%d %H:%M} UTC; {m.get('cores')} cores ({m.get('cpu')}), "
        f"{m.get('memory_gb')} GB, {m.get('kernel')}, 1-min load {m.get('load_1min')} at the "
        f"end; Python {v.get('python')}, commit {commit}"
        + (f"; {libraries}" if libraries else "")
        + ".*"
    )


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as (dotted key, scalar) pairs."""
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flat(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, value)]


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, float):
        return number(value, 0 if abs(value) >= 1000 else 3)
    if isinstance(value, int) and not isinstance(value, bool):
        return number(value)
    return _NONE if value is None else str(value)


def generic(record: Mapping[str, Any]) -> str:
    """The section of a benchmark that has no template: its records' tables."""
    parts = [
        f"## `{record['benchmark']}` (`bench/{record['benchmark']}.py`)",
        "No prose for this benchmark yet (`bench/templates/"
        f"{record['benchmark']}.md.j2`): its record as it is.",
        provenance(record),
    ]
    peers = record.get("peers") or {}
    if peers:
        parts.append(_wide(["peer"], [(name, dict(_flat(f))) for name, f in peers.items()]))
    for title in ("ratios", "parameters", "figures"):
        section = dict(record.get(title) or {})
        # a list of like mappings (one per run or variant) reads best as a table of its own
        lists = {k: v for k, v in section.items() if _rows_of_mappings(v)}
        pairs = _flat({k: v for k, v in section.items() if k not in lists})
        if pairs:
            parts.append(
                table([title.removesuffix("s"), "value"], [[k, _cell(v)] for k, v in pairs])
            )
        for key, rows in lists.items():
            parts.append(
                f"`{key}`:\n\n"
                + _wide(["#"], [(str(i), dict(_flat(r))) for i, r in enumerate(rows)])
            )
    return "\n\n".join(parts) + "\n"


def _rows_of_mappings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _wide(first: list[str], rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Rows of flattened figures as one table, a column per key any row has."""
    columns: list[str] = []
    for _, figures in rows:
        columns += [c for c in figures if c not in columns]
    return table(
        [*first, *columns], [[name, *(_cell(f.get(c)) for c in columns)] for name, f in rows]
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a figure a record lacks is an error, not a blank
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # markdown, not HTML
    )
    env.filters["n"] = number
    env.filters["seconds"] = seconds
    env.globals.update(table=table, provenance=provenance)
    return env


def render(directory: Path = RESULTS) -> str:
    """The README the records under ``directory`` make."""
    env = _environment()
    by_benchmark: dict[str, list[dict[str, Any]]] = {}
    for record in records(directory):
        by_benchmark.setdefault(record["benchmark"], []).append(record)
    names = [b for b in ORDER if b in by_benchmark]
    names += sorted(b for b in by_benchmark if b not in ORDER)
    sections = []
    for name in names:
        found = by_benchmark[name]
        template = f"{name}.md.j2"
        if (TEMPLATES / template).exists():
            sections.append(env.get_template(template).render(records=found, r=found[0]))
        else:
            sections.append("\n".join(generic(r) for r in found))
    return env.get_template("README.md.j2").render(sections=sections)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if README.read_text() != text:
            print(f"{README} is not what bench/results/ makes: run `make bench-readme`")
            return 1
        return 0
    README.write_text(text)
    print(f"wrote {README} from {len(records())} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
