"""``pronscore extract``: SSL hidden states of a prepared split, one layer, pooled or per frame.

Source: a trained SSL RUN_DIR (its fine-tuned encoder) or any backbone (hub id or folder).
Output (``.safetensors`` or ``.npz``, no pickle): ``features`` ``(N, D)`` for mean pooling, or
``frames`` ``(sum T, D)`` + ``offsets`` ``(N + 1,)`` per frame; ``labels`` ``(N, 5)`` (0-10,
NaN missing); ``ids`` (UTF-8 bytes, newline-separated). Utterances are encoded one at a time,
unpadded, exactly as the SSL scorer sees them.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from pronscore.atomic import atomic_write_bytes


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a trained SSL RUN_DIR")
    src.add_argument("--backbone", help="hub id, org/repo/sub/path, or a local folder")
    p.add_argument("--data", required=True, help="DATASET_DIR written by `pronscore prepare`")
    p.add_argument("--split", default="dev")
    p.add_argument("--layer", type=int, default=-1, help="0 = embeddings, -1 = last layer")
    p.add_argument("--pooling", choices=["mean", "none"], default="mean")
    p.add_argument("--max", type=int, default=None, help="first N utterances")
    p.add_argument("--out", required=True, help="FILE.safetensors or FILE.npz")
    p.add_argument("--threads", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from pronscore.constants import UTTERANCE_SCALE
    from pronscore.dataset import load_split
    from pronscore.errors import ModelError
    from pronscore.models.ssl import SslConfig, SslScorer, masked_mean
    from pronscore.models.ssl_inputs import AudioScores

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        model = SslScorer.from_pretrained(args.run)
        fe = model.feature_extractor(args.run)
    else:
        from pronscore.acoustic.encoders import load_backbone_config, load_feature_extractor

        model = SslScorer.from_backbone(args.backbone, SslConfig(strategy="frozen"))
        fe = load_feature_extractor(args.backbone, load_backbone_config(args.backbone))
    model.eval()
    rows = load_split(args.data, args.split)
    if args.max is not None:
        rows = rows.select(range(min(args.max, len(rows))))
    data = AudioScores(rows, model.family, fe, model.settings.aspects)
    pooled, frames = [], []
    with torch.no_grad():
        for i in tqdm(range(len(data)), desc="extract", mininterval=5):
            x = torch.from_numpy(data[i]["input_values"])[None]
            states, fmask = model.encode(x, torch.ones(x.shape[:2], dtype=torch.bool))
            if not -len(states) <= args.layer < len(states):
                raise ModelError(f"layer {args.layer} out of range (0..{len(states) - 1})")
            h = states[args.layer]
            if args.pooling == "mean":
                pooled.append(masked_mean(h, fmask)[0].float().numpy())
            else:
                frames.append(h[0][fmask[0]].float().numpy())
    arrays = {
        "labels": (data.labels * UTTERANCE_SCALE).astype(np.float32),
        "ids": np.frombuffer("\n".join(data.ids).encode(), dtype=np.uint8),
    }
    if args.pooling == "mean":
        arrays["features"] = np.stack(pooled).astype(np.float32)
    else:
        arrays["frames"] = np.concatenate(frames).astype(np.float32)
        arrays["offsets"] = np.cumsum([0] + [len(f) for f in frames]).astype(np.int64)
    write_arrays(Path(args.out), arrays)
    print(f"{args.out}: {len(data)} utterances, layer {args.layer}, pooling {args.pooling}")
    return 0


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    if path.suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
    else:
        from safetensors.numpy import save

        data = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, data)


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from safetensors.numpy import load_file

    return load_file(str(path))
