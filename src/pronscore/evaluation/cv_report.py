"""Markdown table of ``pronscore cv`` results: one row per CV folder, pooled out-of-fold PCC
with its bootstrap 95% CI per level and aspect, children / adults, the mean of the per-fold
PCCs, folds and CPU time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pronscore.errors import CorpusError
from pronscore.features.extract import extractor_config_of, warp_flag
from pronscore.heads.ensemble import LEVELS
from pronscore.training.recipe import Recipe

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


FOLD_MEANS = (("utterance", "total"), ("word", "accuracy"), ("phone", "accuracy"))


def fold_mean(cv: dict[str, Any], level: str, aspect: str) -> float | None:
    """Mean over folds of each fold's own PCC: unlike the pooled PCC, blind to folds' models
    being scaled differently (pooled below it: the folds' predictions disagree in scale)."""
    pccs = [(f.get(level) or {}).get(aspect, {}).get("pcc") for f in scored_folds(cv)]
    return None if not pccs or None in pccs else sum(pccs) / len(pccs)


def scored_folds(cv: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-fold metrics of what ``pooled`` scores: a seed ensemble's own folds."""
    return cv.get("ensemble_folds") or cv.get("folds", [])


def _mean_cells(cv: dict[str, Any]) -> str:
    means = [fold_mean(cv, lvl, a) for lvl, a in FOLD_MEANS]
    return " / ".join("–" if m is None else f"{m:.3f}" for m in means)


def row(name: str, cv: dict[str, Any]) -> str:
    pooled = cv["pooled"]
    cells = [_pcc(pooled.get(lvl, {}).get(a), ci=a in ("total", "accuracy")) for lvl, a in COLUMNS]
    groups = [
        f"{_pcc(_group(pooled, 'child', lvl, a), False)} / "
        f"{_pcc(_group(pooled, 'adult', lvl, a), False)}"
        for lvl, a in (("utterance", "total"), ("word", "accuracy"), ("phone", "accuracy"))
    ]
    folds = ", ".join(f"{f['utterance']['total']['pcc']:.3f}" for f in scored_folds(cv))
    cpu = f"{cv.get('cpu_seconds', 0):.0f}"
    return "| " + " | ".join([name, *cells, *groups, _mean_cells(cv), folds, cpu]) + " |"


def render_cv(runs: dict[str, dict[str, Any]], command: str = "") -> str:
    """The table for ``{row name: cv.json}``, in the given order."""
    first = next(iter(runs.values()))
    head = ["row", *(f"{lvl} {a}" for lvl, a in COLUMNS)]
    head += ["child / adult utt total", "child / adult word acc", "child / adult phone"]
    head += ["fold mean: utt total / word acc / phone", "utt total per fold", "CPU s"]
    lines = [
        "# Speaker-grouped cross-validation (Speechocean762 train + dev)",
        "",
        f"{first['n_folds']}-fold cross-validation over {first['n_utterances']} utterances of "
        f"{first['n_speakers']} speakers (children and adults balanced over folds; model "
        "selection on speakers held out of the training folds, never the scored fold). Cells: "
        "Pearson correlation of the pooled out-of-fold predictions with the experts' scores, "
        'bootstrap 95% CI over utterances for totals and accuracies. "Fold mean": the mean '
        "of each fold's own PCC, blind to folds' models being scaled differently (a pooled PCC "
        "well below it says they are).",
        "",
    ]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [row(name, cv) for name, cv in runs.items()]
    lines += _channel_table(runs)
    lines += ["", "## How each row was made", ""]
    lines += [
        f"- {name}: `{cv_command(cv)}`{_features_note(cv)}{_seeds_note(cv)}"
        for name, cv in runs.items()
    ]
    lines += [
        "",
        "FEATURES_DIR from `pronscore features data/so762 --out DIR --jobs 2` (with `--encoder "
        "../shared/models/whisper-base-encoder --layers L` for encoder vectors), `data/so762` "
        "from `pronscore prepare ../shared/data/speechocean762 --out data/so762`. CPU seconds "
        "are process time on a 2-core machine shared with other jobs.",
    ]
    return "\n".join(lines) + "\n"


def _channel_table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Rows with channel copies (``cv --copies``): each kind's out-of-fold utterance total
    against the clean out-of-fold prediction (PCC, mean |delta|) and the experts (PCC)."""
    kinds = sorted({k for cv in runs.values() for k in cv.get("channels", {})})
    if not kinds:
        return []
    head = ["row", *(f"{k}: PCC with clean / mean abs delta / PCC with experts" for k in kinds)]
    lines = [
        "",
        "Channel copies of the same recordings (`pronscore negatives --kinds band-8k,noise`: "
        "8 kHz band limit, white noise at 15 dB SNR), scored out of fold by each fold's model:",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, cv in runs.items():
        ch = cv.get("channels", {})
        cells = [_stability(ch.get(k)) for k in kinds]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return lines


def _stability(c: dict[str, Any] | None) -> str:
    if not c:
        return "–"
    return " / ".join(
        "–" if c.get(k) is None else f"{c[k]:.3f}"
        for k in ("pcc_clean", "mean_abs_delta", "pcc_human")
    )


def _seeds_note(cv: dict[str, Any]) -> str:
    """For a seed ensemble: what its seeds scored alone (their mean), so the row shows what
    the averaging adds over a single model and what is seed luck."""
    alone = cv.get("pooled_mean") if cv.get("ensemble_folds") else None
    if not alone:
        return ""
    cells = [
        f"{lvl} {a} {alone[lvl][a]['pcc']:.3f}"
        for lvl, a in (*FOLD_MEANS[:1], ("utterance", "prosodic"), *FOLD_MEANS[1:])
        if a in alone.get(lvl, {})
    ]
    return f" (the seeds alone, mean PCC: {', '.join(cells)})"


def _features_note(cv: dict[str, Any]) -> str:
    """How the FEATURES_DIR was made when not with the recommended front end (its frequency
    warp): from the cv.json, else from the FEATURES_DIR's meta.json when it is still there."""
    extractor = cv.get("extractor")
    if extractor is None and cv.get("features_dir"):
        try:
            extractor = extractor_config_of(cv["features_dir"]).to_dict()
        except CorpusError:
            return ""
    flag = warp_flag(((extractor or {}).get("model") or {}).get("warp")) if extractor else ""
    if not flag:
        return ""
    out = cv.get("features_dir")
    return f" (features: `pronscore features data/so762 --out {out} --jobs 2{flag}`)"


def cv_command(cv: dict[str, Any]) -> str:
    """The ``pronscore cv`` command line that made a cv.json (its recorded options)."""
    if cv.get("kind") == "blend":
        parts = ["pronscore blend", *cv["members"], "--features", str(cv.get("features_dir"))]
        if list(cv.get("levels", LEVELS)) != list(LEVELS):
            parts += ["--levels", ",".join(cv["levels"])]
        return " ".join(parts)
    o = cv.get("options", {})
    parts = ["pronscore cv", str(cv.get("kind", "?")), "--features", str(cv.get("features_dir"))]
    parts += ["--folds", str(cv.get("n_folds"))]
    if cv.get("kind") == "hier":
        parts += ["--inputs", str(o.get("inputs"))]
        for key, default in (("arch", "hier"), ("pcc_weight", 0.0), ("select_on", "total")):
            if o.get(key, default) != default:
                parts += [f"--{key.replace('_', '-')}", str(o[key])]
    if (cv.get("fold_seed") or 1) != 1:
        parts += ["--fold-seed", str(cv["fold_seed"])]
    if list(o.get("seeds") or [1]) != [1]:
        parts += ["--seeds", ",".join(map(str, o["seeds"]))]
    if o.get("ensemble"):
        parts.append("--ensemble")
    if o.get("feature_set", "all") != "all":
        parts += ["--feature-set", str(o["feature_set"])]
    parts += Recipe.from_options(o).cv_flags().split()
    if o.get("num_leaves"):
        parts += ["--num-leaves", ",".join(map(str, o["num_leaves"]))]
    for key in ("max_rounds", "epochs"):
        if o.get(key) is not None:
            parts += [f"--{key.replace('_', '-')}", str(o[key])]
    if cv.get("copies"):
        parts += ["--copies", ",".join(cv["copies"])]
    return " ".join(parts)
