"""Metrics shared by every command: PCC, MSE and bootstrap 95% CIs per aspect and level.

The JSON layout (kept stable; independent evaluation reads it)::

    {"n_utterances": N,
     "utterance": {"total": {"pcc": r, "ci95": [lo, hi], "mse": m, "n": k}, ...},
     "word": {"accuracy": {...}, "stress": {...}, "total": {...}},
     "phone": {"accuracy": {...}},
     "subgroups": {"child": {<same three levels>, "n_utterances": n}, "adult": ..., "male": ...,
                   "female": ...},
     "consistency": {"n": k, "predicted": {"outside": share, "below_all": share},
                     (with the sentence figure the words give, "from_words": {"n", "pcc_human",
                     "pcc_served", "within_1"}),
                     "labels": {...}}}

Bootstrap CIs resample *utterances* (with all their words and phones), so correlated words of
one speaker/utterance do not make the interval look tighter than it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pronscore.constants import CHILD_MAX_AGE, PHONE_ASPECTS, UTTERANCE_ASPECTS, WORD_ASPECTS
from pronscore.schema import Assessment

N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class UttMeta:
    """What subgroup metrics need to know of an utterance's speaker."""

    age: int | None = None
    gender: str | None = None


@dataclass(frozen=True)
class Pairs:
    """Reference/prediction pairs with the index of the utterance each came from."""

    ref: np.ndarray
    hyp: np.ndarray
    utt: np.ndarray


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation; ``None`` when undefined (fewer than 2 points or a constant)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return None if denom == 0 else float((dx * dy).sum() / denom)


def _moments(p: Pairs, n_utts: int) -> np.ndarray:
    """Per-utterance sums (n, x, y, xx, yy, xy) so a bootstrap is one matrix product."""
    x, y = p.ref, p.hyp
    cols = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    out = np.zeros((n_utts, 6))
    np.add.at(out, p.utt, cols)
    return out


def _pcc_from_moments(m: np.ndarray) -> np.ndarray:
    n, sx, sy, sxx, syy, sxy = (m[..., i] for i in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        var = (sxx - sx * sx / n) * (syy - sy * sy / n)
        return cov / np.sqrt(var)


def _resamples(n_utts: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_utts) counts: how often each utterance is drawn in each bootstrap resample."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_utts, np.full(n_utts, 1.0 / n_utts), size=n_boot)


def _percentile_ci(rs: np.ndarray) -> list[float] | None:
    rs = rs[np.isfinite(rs)]
    if rs.size == 0:
        return None
    lo, hi = np.percentile(rs, [2.5, 97.5])
    return [float(lo), float(hi)]


def bootstrap_ci(
    p: Pairs, n_utts: int, *, n_boot: int = N_BOOTSTRAP, seed: int = 0
) -> list[float] | None:
    """Percentile 95% CI of the PCC, resampling utterances with replacement."""
    if p.ref.size < 3 or n_boot <= 0:
        return None
    return _percentile_ci(_pcc_from_moments(_resamples(n_utts, n_boot, seed) @ _moments(p, n_utts)))


def summarize(p: Pairs, n_utts: int, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """``{"pcc", "ci95", "mse", "n"}`` for one aspect."""
    n = int(p.ref.size)
    if n == 0:
        return {"pcc": None, "ci95": None, "mse": None, "n": 0}
    return {
        "pcc": pearson(p.ref, p.hyp),
        "ci95": bootstrap_ci(p, n_utts, n_boot=n_boot, seed=seed),
        "mse": float(np.mean((p.ref - p.hyp) ** 2)),
        "n": n,
    }


def collect_pairs(refs: list[Assessment], hyps: list[Assessment]) -> dict[str, dict[str, Pairs]]:
    """Every labelled-and-predicted value, per level and aspect.

    Words pair by position in the utterance (both sides follow the prompt's words); phones by
    position within their word. Pairs where either side is ``None`` are left out.
    """
    acc: dict[tuple[str, str], list[tuple[float, float, int]]] = {}

    def add(level: str, aspect: str, r: float | None, h: float | None, i: int) -> None:
        if r is not None and h is not None:
            acc.setdefault((level, aspect), []).append((r, h, i))

    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        for a in UTTERANCE_ASPECTS:
            add("utterance", a, getattr(ref.utterance, a), getattr(hyp.utterance, a), i)
        for rw, hw in zip(ref.words, hyp.words, strict=False):
            for a in WORD_ASPECTS:
                add("word", a, getattr(rw, a), getattr(hw, a), i)
            for rp, hp in zip(rw.phones, hw.phones, strict=False):
                add("phone", "accuracy", rp.score, hp.score, i)
    levels = {"utterance": UTTERANCE_ASPECTS, "word": WORD_ASPECTS, "phone": PHONE_ASPECTS}
    out: dict[str, dict[str, Pairs]] = {}
    for level, aspects in levels.items():
        out[level] = {}
        for a in aspects:
            arr = np.asarray(acc.get((level, a), []), dtype=float).reshape(-1, 3)
            out[level][a] = Pairs(arr[:, 0], arr[:, 1], arr[:, 2].astype(int))
    return out


def _levels(refs: list[Assessment], hyps: list[Assessment], n_boot: int, seed: int) -> dict:
    pairs = collect_pairs(refs, hyps)
    return {
        level: {a: summarize(p, len(refs), n_boot=n_boot, seed=seed) for a, p in aspects.items()}
        for level, aspects in pairs.items()
    }


def _outside(a: Assessment) -> tuple[bool, bool] | None:
    """(utterance accuracy outside [min, max] of its words' accuracies, below all of them), or
    ``None`` without an utterance accuracy or word accuracies."""
    u = a.utterance.accuracy
    words = [w.accuracy for w in a.words if w.accuracy is not None]
    if u is None or not words:
        return None
    return u < min(words) or u > max(words), u < min(words)


def level_consistency(refs: Sequence[Assessment], hyps: Sequence[Assessment]) -> dict:
    """How often an utterance's accuracy falls outside the range of its words' accuracies
    (``outside``) and below every one of them (``below_all``), for the predictions and, on
    the same utterances (scored ``ok``), for the experts' labels: a learner reads the two
    levels together, and the experts' rubric itself puts the sentence below its words."""
    both = ((_outside(r), _outside(h)) for r, h in zip(refs, hyps, strict=True) if h.status == "ok")
    pairs = [(r, h) for r, h in both if r is not None and h is not None]
    n = len(pairs)

    def share(side: int, k: int) -> float | None:
        return None if not n else sum(p[side][k] for p in pairs) / n

    out = {
        "n": n,
        "predicted": {"outside": share(1, 0), "below_all": share(1, 1)},
        "labels": {"outside": share(0, 0), "below_all": share(0, 1)},
    }
    explained = [(r.utterance.accuracy, h.utterance.accuracy, h.from_words)
                 for r, h in zip(refs, hyps, strict=True)
                 if h.status == "ok" and h.from_words is not None
                 and None not in (r.utterance.accuracy, h.utterance.accuracy)]  # fmt: skip
    if explained:  # the sentence figure the words give (pronscore.levels), beside the model's
        human, served, words = (np.asarray(v, float) for v in zip(*explained, strict=True))
        out["from_words"] = {
            "n": len(explained),
            "pcc_human": pearson(human, words),
            "pcc_served": pearson(served, words),
            "within_1": float(np.mean(np.abs(served - words) <= 1.0)),
        }
    return out


def channel_stability(
    clean: Sequence[Assessment], copies: Sequence[Assessment], human: Sequence[float | None]
) -> dict:
    """The same recordings through another channel (``copies[i]`` of ``clean[i]``, human
    utterance total ``human[i]``): PCC of the copies' utterance total with the clean
    prediction and with the experts, mean |delta total|, and the share not scored ``ok``
    (the right text called a mismatch or not aligned). Issue 11's goals: PCC with the clean
    prediction >= 0.95 and mean |delta| <= 0.4 (white noise at 10 dB: 0.90 / 0.6)."""
    ref = np.array([_total(a) for a in clean], float)
    got = np.array([_total(a) for a in copies], float)
    hum = np.array([np.nan if v is None else v for v in human], float)
    both = np.isfinite(ref) & np.isfinite(got)
    labelled = np.isfinite(got) & np.isfinite(hum)
    return {
        "n": len(copies),
        "pcc_clean": pearson(got[both], ref[both]),
        "mean_abs_delta": float(np.abs(got[both] - ref[both]).mean()) if both.any() else None,
        "pcc_human": pearson(got[labelled], hum[labelled]),
        "not_ok": float(np.mean([a.status != "ok" for a in copies])) if copies else None,
    }


def _total(a: Assessment) -> float:
    v = a.utterance.total
    return np.nan if v is None else float(v)


def subgroup_of(meta: UttMeta) -> list[str]:
    groups = []
    if meta.age is not None:
        groups.append("child" if meta.age <= CHILD_MAX_AGE else "adult")
    if meta.gender in ("m", "male"):
        groups.append("male")
    elif meta.gender in ("f", "female"):
        groups.append("female")
    return groups


def evaluate_assessments(
    refs: Mapping[str, Assessment],
    hyps: Mapping[str, Assessment],
    meta: Mapping[str, UttMeta] | None = None,
    *,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict:
    """The metrics JSON for predictions ``hyps`` against labels ``refs`` (keyed by utt id).

    Utterances without a prediction are counted in ``n_missing`` and left out.
    """
    ids = sorted(i for i in refs if i in hyps)
    r, h = [refs[i] for i in ids], [hyps[i] for i in ids]
    result = {"n_utterances": len(ids), "n_missing": len(refs) - len(ids)}
    result.update(_levels(r, h, n_boot, seed))
    result["consistency"] = level_consistency(r, h)
    groups: dict[str, list[str]] = {}
    for i in ids:
        for g in subgroup_of((meta or {}).get(i, UttMeta())):
            groups.setdefault(g, []).append(i)
    result["subgroups"] = {
        g: {
            "n_utterances": len(members),
            **_levels([refs[i] for i in members], [hyps[i] for i in members], n_boot, seed),
        }
        for g, members in sorted(groups.items())
    }
    return result


def evaluate_seeds(
    refs: Mapping[str, Assessment],
    hyps_by_seed: Sequence[Mapping[str, Assessment]],
    *,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> dict:
    """Per level and aspect: the mean PCC over several runs (seeds) on the same utterances,
    its SD over runs, the mean MSE, n, and a bootstrap 95% CI *of that mean* (each resample of
    utterances scores every run), so the interval belongs to the statistic reported."""
    ids = sorted(i for i in refs if all(i in h for h in hyps_by_seed))
    r = [refs[i] for i in ids]
    runs = [collect_pairs(r, [h[i] for i in ids]) for h in hyps_by_seed]
    if not runs:
        return {}
    counts = _resamples(len(ids), n_boot, seed) if n_boot > 0 and ids else None
    out: dict[str, dict] = {}
    for level, aspects in runs[0].items():
        for a in aspects:
            pairs = [run[level][a] for run in runs]
            pccs = [pearson(p.ref, p.hyp) for p in pairs]
            if pairs[0].ref.size < 3 or any(v is None for v in pccs):
                continue
            ci = None
            if counts is not None:
                boot = [_pcc_from_moments(counts @ _moments(p, len(ids))) for p in pairs]
                ci = _percentile_ci(np.mean(boot, axis=0))
            out.setdefault(level, {})[a] = {
                "pcc": float(np.mean(pccs)),
                "pcc_sd": float(np.std(pccs)),
                "ci95": ci,
                "mse": float(np.mean([np.mean((p.ref - p.hyp) ** 2) for p in pairs])),
                "n": int(pairs[0].ref.size),
            }
    return out


def format_table(metrics: dict) -> str:
    """A short human-readable table of PCC [CI] / MSE / n per level and aspect."""
    lines = [f"utterances: {metrics['n_utterances']}"]
    for level in ("utterance", "word", "phone"):
        for aspect, m in metrics.get(level, {}).items():
            if not m["n"]:
                continue
            ci = m["ci95"]
            ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
            pcc = "n/a" if m["pcc"] is None else f"{m['pcc']:.3f}"
            lines.append(f"{level:9s} {aspect:12s} PCC {pcc}{ci_s}  MSE {m['mse']:.3f}  n={m['n']}")
    return "\n".join(lines)
