"""Figures, the table, the JSON file and the comparison with an earlier run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

SCHEMA: Final = "pixel-relay-bench/1"
RATIO: Final = "\N{MULTIPLICATION SIGN}"  # the unit of a figure that is a ratio


@dataclass
class Figure:
    """One row of the table. `target` None: reported, not judged."""

    key: str
    label: str
    unit: str
    target: float | None = None
    lower_is_better: bool = True
    inclusive: bool = True  # False: the value must stay strictly under the target
    value: float = math.nan
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.error or math.isnan(self.value):
            return False
        if self.target is None:
            return None
        if not self.lower_is_better:
            return self.value >= self.target
        return self.value <= self.target if self.inclusive else self.value < self.target

    def target_text(self) -> str:
        if self.target is None:
            return "reported"
        sign = ("≤" if self.inclusive else "<") if self.lower_is_better else "≥"
        return f"{sign} {_number(self.target)}{'' if self.unit == RATIO else ' ' + self.unit}"

    def value_text(self) -> str:
        if self.error:
            return "error"
        suffix = RATIO if self.unit == RATIO else f" {self.unit}"
        return f"{_number(self.value)}{suffix}"

    def verdict(self) -> str:
        passed = self.passed
        if self.error:
            return "ERROR"
        return {True: "pass", False: "FAIL", None: "info"}[passed]

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["passed"] = self.passed
        if math.isnan(self.value):
            document["value"] = None
        return document


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    """A Markdown table: it reads in a terminal and pastes into the docs unchanged."""
    rows = [("figure", "value", "target", "result")]
    rows += [(f.label, f.value_text(), f.target_text(), f.verdict()) for f in figures]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for number, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if number == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def document(figures: list[Figure], machine: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "machine": machine,
        "run": run,
        "figures": {figure.key: figure.to_json() for figure in figures},
    }


def write(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if content.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a {SCHEMA} file")
    return content


def comparison(earlier: dict[str, Any], figures: list[Figure]) -> str:
    """Each figure now against the same figure in an earlier JSON: delta and direction."""
    rows = [("figure", "before", "now", "change", "")]
    before_figures: dict[str, Any] = earlier.get("figures", {})
    for figure in figures:
        before = before_figures.get(figure.key, {}).get("value")
        now = figure.value
        if before is None or math.isnan(now):
            rows.append((figure.label, _maybe(before), _maybe(now), "n/a", ""))
            continue
        delta = now - float(before)
        relative = f" ({delta / before:+.0%})" if before else ""
        better = delta < 0 if figure.lower_is_better else delta > 0
        direction = "same" if delta == 0 else ("better" if better else "worse")
        rows.append(
            (
                figure.label,
                _number(float(before)),
                _number(now),
                f"{delta:+.3g}{relative}",
                direction,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    machine = earlier.get("machine", {})
    lines.insert(
        0,
        f"compared with {earlier.get('run', {}).get('started', '?')}"
        f" on {machine.get('cpu_model', '?')} ({machine.get('nproc', '?')} CPUs)",
    )
    return "\n".join(lines)


def _maybe(value: Any) -> str:
    if value is None:
        return "n/a"
    return _number(float(value))
