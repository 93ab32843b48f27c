"""Scatter plots of prediction vs human score, one PNG per level and aspect."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pronscore.evaluation.metrics import collect_pairs, pearson
from pronscore.schema import Assessment


def scatter_plots(
    refs: Mapping[str, Assessment], hyps: Mapping[str, Assessment], out_dir: str | Path
) -> list[Path]:
    """Write ``<level>_<aspect>.png`` into ``out_dir`` and return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = sorted(i for i in refs if i in hyps)
    pairs = collect_pairs([refs[i] for i in ids], [hyps[i] for i in ids])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for level, aspects in pairs.items():
        for aspect, p in aspects.items():
            if p.ref.size < 2:
                continue
            fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
            ax.scatter(p.ref, p.hyp, s=6, alpha=0.4)
            lo, hi = (0, 2) if level == "phone" else (0, 10)
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
            r = pearson(p.ref, p.hyp)
            ax.set(
                xlabel="human", ylabel="predicted", xlim=(lo, hi), ylim=(lo, hi),
                title=f"{level} {aspect}: PCC {r:.3f} (n={p.ref.size})" if r is not None
                else f"{level} {aspect} (n={p.ref.size})",
            )  # fmt: skip
            path = out / f"{level}_{aspect}.png"
            fig.tight_layout()
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written
