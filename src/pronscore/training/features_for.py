"""Features for a dataset split at prediction time: reuse the training FEATURES_DIR when it
holds exactly that split's utterances, otherwise extract them once into a cache folder."""

from __future__ import annotations

from pathlib import Path

from pronscore.features.extract import SplitFeatures, extract_dataset, load_features


def features_for_split(
    features_dir: str | Path | None,
    dataset_dir: str | Path,
    split: str,
    *,
    jobs: int = 1,
    cache_dir: str | Path | None = None,
) -> SplitFeatures:
    from pronscore.dataset import load_split

    ids = set(load_split(dataset_dir, split)["id"])
    if features_dir and (Path(features_dir) / split / "utterances.parquet").is_file():
        feats = load_features(features_dir, split)
        if set(feats.utterances["id"].astype(str)) == ids:
            return feats
    root = Path(cache_dir or Path(dataset_dir).parent) / "features-cache"
    extract_dataset(dataset_dir, root, splits=[split], jobs=jobs)
    return load_features(root, split)
