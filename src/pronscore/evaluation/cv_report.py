"""Markdown table of ``pronscore cv`` results: one row per CV folder, pooled out-of-fold PCC
with its bootstrap 95% CI per level and aspect, children / adults, folds and CPU time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pronscore.errors import CorpusError

COLUMNS = (
    ("utterance", "total"),
    ("utterance", "accuracy"),
    ("utterance", "completeness"),
    ("utterance", "fluency"),
    ("utterance", "prosodic"),
    ("word", "accuracy"),
    ("word", "total"),
    ("phone", "accuracy"),
)


def read_cv(cv_dir: str | Path) -> dict[str, Any]:
    path = Path(cv_dir) / "cv.json"
    if not path.is_file():
        raise CorpusError("not a `pronscore cv` folder (no cv.json)", path=cv_dir)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorpusError(f"invalid JSON ({exc})", path=path) from None


def _pcc(m: dict | None, ci: bool = True) -> str:
    if not m or m.get("pcc") is None:
        return "–"
    lo_hi = m.get("ci95")
    tail = f" [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if ci and lo_hi else ""
    return f"{m['pcc']:.3f}{tail}"


def _group(pooled: dict, group: str, level: str, aspect: str) -> dict | None:
    return pooled.get("subgroups", {}).get(group, {}).get(level, {}).get(aspect)


def row(name: str, cv: dict[str, Any]) -> str:
    pooled = cv["pooled"]
    cells = [_pcc(pooled.get(lvl, {}).get(a), ci=a in ("total", "accuracy")) for lvl, a in COLUMNS]
    groups = [
        f"{_pcc(_group(pooled, 'child', lvl, a), False)} / "
        f"{_pcc(_group(pooled, 'adult', lvl, a), False)}"
        for lvl, a in (("utterance", "total"), ("word", "accuracy"), ("phone", "accuracy"))
    ]
    folds = ", ".join(f"{f['utterance']['total']['pcc']:.3f}" for f in cv["folds"])
    cpu = f"{cv.get('cpu_seconds', 0):.0f}"
    return "| " + " | ".join([name, *cells, *groups, folds, cpu]) + " |"


def render_cv(runs: dict[str, dict[str, Any]], command: str = "") -> str:
    """The table for ``{row name: cv.json}``, in the given order."""
    first = next(iter(runs.values()))
    head = ["row", *(f"{lvl} {a}" for lvl, a in COLUMNS)]
    head += ["child / adult utt total", "child / adult word acc", "child / adult phone"]
    head += ["utt total per fold", "CPU s"]
    lines = [
        "# Speaker-grouped cross-validation (Speechocean762 train + dev)",
        "",
        f"{first['n_folds']}-fold cross-validation over {first['n_utterances']} utterances of "
        f"{first['n_speakers']} speakers (children and adults balanced over folds; model "
        "selection on speakers held out of the training folds, never the scored fold). Cells: "
        "Pearson correlation of the pooled out-of-fold predictions with the experts' scores, "
        "bootstrap 95% CI over utterances for totals and accuracies.",
        "",
    ]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [row(name, cv) for name, cv in runs.items()]
    return "\n".join(lines) + "\n"
