"""PCA of pooled SSL features: explained variance, PC-score correlations, PC1-PC2 scatter, and
a PC-subset experiment done right.

The seed's notebooks sliced the input weights of an already trained head to "use the first k
PCs"; here a fresh ridge regressor is fitted on the first k principal components of the
*training* features (PCA fitted on train only) and scored on a held-out split.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pronscore.atomic import atomic_write_bytes
from pronscore.evaluation.metrics import pearson


@dataclass(frozen=True)
class Pca:
    mean: np.ndarray  # (D,)
    components: np.ndarray  # (K, D), rows are unit principal axes
    explained_variance_ratio: np.ndarray  # (K,)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) @ self.components.T


def fit_pca(x: np.ndarray, k: int | None = None) -> Pca:
    """Principal axes of ``x`` ``(N, D)`` by SVD of the centred data."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs a (N >= 2, D) matrix, got shape {x.shape}")
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    k = len(s) if k is None else min(k, len(s))
    return Pca(mean, vt[:k], (var / var.sum())[:k])


def pc_score_correlations(
    pcs: np.ndarray, labels: np.ndarray, aspects: tuple[str, ...], k: int = 10
) -> dict[str, list[float | None]]:
    """PCC of each of the first ``k`` PCs with each aspect (labelled rows only)."""
    out = {}
    for j, a in enumerate(aspects):
        ok = ~np.isnan(labels[:, j])
        out[a] = [pearson(pcs[ok, i], labels[ok, j]) for i in range(min(k, pcs.shape[1]))]
    return out


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, float]:
    xm, ym = x.mean(0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return w, float(ym - xm @ w)


def pc_subset_curve(
    pca: Pca, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
    aspect_index: int, ks: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100),
) -> dict[int, float | None]:  # fmt: skip
    """Held-out PCC of a ridge regressor on the first k PCs (PCA and ridge fitted on train)."""
    (xtr, ytr), (xte, yte) = train, test
    ztr, zte = pca.transform(xtr), pca.transform(xte)
    ytr, yte = ytr[:, aspect_index], yte[:, aspect_index]
    ok_tr, ok_te = ~np.isnan(ytr), ~np.isnan(yte)
    out = {}
    for k in ks:
        if k > ztr.shape[1]:
            break
        w, b = ridge_fit(ztr[ok_tr, :k], ytr[ok_tr])
        out[k] = pearson(zte[ok_te, :k] @ w + b, yte[ok_te])
    return out


def scatter_png(pcs: np.ndarray, score: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    sc = ax.scatter(pcs[:, 0], pcs[:, 1], c=score, cmap="viridis", s=8, alpha=0.8)
    fig.colorbar(sc, ax=ax, label=title)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(f"PC1-PC2 coloured by {title}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
