"""Train the CTC phone recogniser (:mod:`pronscore.acoustic.phone_ctc`) on cached encoder
frames (:mod:`pronscore.features.frames_cache`) and the canonical phones of each utterance.

The epoch is chosen on the CTC loss of held-out validation speakers. ``train_cross_fitted``
also trains one recogniser per speaker fold (the folds of ``pronscore cv``), so that every
labelled utterance can get columns from a recogniser that never heard its speaker: a head
trained on in-sample posteriors would trust them more than they deserve on new audio.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pronscore.acoustic.phone_ctc import FOLDS_FILE, PhoneCtcConfig, PhoneCtcNet, PhoneRecogniser
from pronscore.align.ctc import CTC_INDEX
from pronscore.atomic import atomic_write_text
from pronscore.errors import CorpusError
from pronscore.features.frames_cache import load_states, read_meta
from pronscore.training.cv import assign_folds, speaker_groups, validation_speakers


@dataclass(frozen=True)
class CtcTrainOptions:
    epochs: int = 12
    batch: int = 16  # utterances
    lr: float = 2e-3
    weight_decay: float = 1e-2
    val_fraction: float = 0.1  # of the speakers, per age group: they choose the epoch
    seed: int = 1
    threads: int = 2


@dataclass(frozen=True)
class CtcData:
    """Every utterance's hidden states (the config's layers, float16) and canonical phones."""

    states: dict[str, np.ndarray]  # id -> (L, T, D)
    targets: dict[str, list[int]]  # id -> CTC_VOCAB indices


def load_ctc_data(phones: pd.DataFrame, cache_dir: str | Path, layers: Sequence[int]) -> CtcData:
    """The cached frames of every utterance of a phones table, with its canonical phones."""
    targets = {
        str(u): [CTC_INDEX[p] for p in g.sort_values("phone_index")["base_phone"]]
        for u, g in phones.groupby("id", sort=True)
    }
    states = {u: load_states(cache_dir, u, layers) for u in targets}
    return CtcData(states, targets)


def _batches(ids: list[str], size: int, rng: np.random.Generator) -> list[list[str]]:
    order = rng.permutation(len(ids))
    return [[ids[i] for i in order[k : k + size]] for k in range(0, len(ids), size)]


def _loss(net: PhoneCtcNet, data: CtcData, ids: Sequence[str]):
    import torch

    lengths = [data.states[u].shape[1] for u in ids]
    t_max = max(lengths)
    x = np.zeros(
        (len(ids), *data.states[ids[0]].shape[:1], t_max, data.states[ids[0]].shape[2]), np.float32
    )
    for k, u in enumerate(ids):
        x[k, :, : lengths[k]] = data.states[u]
    lp = net(torch.from_numpy(x)).transpose(0, 1)  # (T, B, V)
    flat = torch.tensor([p for u in ids for p in data.targets[u]], dtype=torch.long)
    return torch.nn.functional.ctc_loss(
        lp,
        flat,
        torch.tensor(lengths),
        torch.tensor([len(data.targets[u]) for u in ids]),
        blank=0,
        reduction="sum",
        zero_infinity=True,
    ) / sum(lengths)


def train_phone_ctc(
    data: CtcData,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    config: PhoneCtcConfig,
    opts: CtcTrainOptions,
    log: Callable[[str], None] = print,
) -> tuple[PhoneCtcNet, dict]:
    """The network at the epoch of lowest validation loss (per frame), and the history."""
    import torch

    torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    net = PhoneCtcNet(config)
    optim = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    train_ids = sorted(train_ids)
    steps = opts.epochs * -(-len(train_ids) // opts.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, opts.lr, total_steps=steps)
    best, best_state, history = np.inf, None, []
    for epoch in range(1, opts.epochs + 1):
        t0 = time.time()
        net.train()
        for ids in _batches(train_ids, opts.batch, rng):
            optim.zero_grad()
            _loss(net, data, ids).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optim.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            val = float(
                np.mean(
                    [_loss(net, data, ids).item() for ids in _batches(sorted(val_ids), 32, rng)]
                )
            )
        history.append({"epoch": epoch, "val_loss": val, "seconds": round(time.time() - t0, 1)})
        log(f"epoch {epoch}: validation CTC loss per frame {val:.4f} ({time.time() - t0:.0f} s)")
        if val < best:
            best, best_state = val, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return net.eval(), {"history": history, "best_val_loss": best}


def _split_ids(utts: pd.DataFrame, speakers: set[str], val_fraction: float, seed: int):
    rows = utts[utts["speaker"].astype(str).isin(speakers)]
    val = validation_speakers(speaker_groups(rows), val_fraction, seed)
    is_val = rows["speaker"].astype(str).isin(val)
    return rows["id"][~is_val].astype(str).tolist(), rows["id"][is_val].astype(str).tolist()


def train_cross_fitted(
    utts: pd.DataFrame,
    data: CtcData,
    out_dir: str | Path,
    *,
    config: PhoneCtcConfig,
    opts: CtcTrainOptions,
    folds: int = 5,
    fold_seed: int = 1,
    encoder: str,
    log: Callable[[str], None] = print,
) -> PhoneRecogniser:
    """The recogniser on every speaker (the run folder) and, with ``folds`` >= 2, one per
    speaker fold trained without it (``fold-<k>/``, with ``folds.json``: speaker -> fold)."""
    out = Path(out_dir)
    utts = utts[utts["id"].astype(str).isin(data.targets)]
    speakers = set(utts["speaker"].astype(str))
    fold_of: Mapping[str, int] = (
        assign_folds(speaker_groups(utts), folds, fold_seed) if folds >= 2 else {}
    )
    if fold_of:  # first: the fold recognisers are usable while the last one trains
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / FOLDS_FILE, json.dumps(dict(sorted(fold_of.items())), indent=0))
    for k in range(folds if folds >= 2 else 0):
        if _trained(out / f"fold-{k}", config, opts):
            log(f"fold {k}: recogniser already trained")  # resumed
            continue
        log(f"fold {k}: recogniser without its speakers")
        rest = {s for s in speakers if fold_of[s] != k}
        net, info = train_phone_ctc(
            data, *_split_ids(utts, rest, opts.val_fraction, k), config, opts, log
        )
        extra = {"fold": k, "options": asdict(opts), **info}
        PhoneRecogniser(net, encoder, extra).save_pretrained(out / f"fold-{k}")
    log("every speaker")
    net, info = train_phone_ctc(
        data, *_split_ids(utts, speakers, opts.val_fraction, fold_seed), config, opts, log
    )
    extra = {"options": asdict(opts), "n_utterances": len(utts), **info}
    if fold_of:
        extra["folds"] = {"k": folds, "fold_seed": fold_seed}
    rec = PhoneRecogniser(net, encoder, extra)
    rec.save_pretrained(out)
    return rec


def _trained(fold_dir: Path, config: PhoneCtcConfig, opts: CtcTrainOptions) -> bool:
    """Whether ``fold_dir`` holds a recogniser of these settings (a resumed run); one of
    other settings is an error, not something to overwrite or mix in."""
    path = fold_dir / "config.json"
    if not path.is_file():
        return False
    saved = json.loads(path.read_text(encoding="utf-8"))
    want = {**asdict(config), "layers": list(config.layers)}
    if saved.get("config") != want or saved.get("options") != asdict(opts):
        raise CorpusError("a recogniser of other settings is here; use a new --out", path=path)
    return True


def check_cache(cache_dir: str | Path, config: PhoneCtcConfig) -> str:
    """The cache's encoder name, after checking it holds the config's layers and width."""
    meta = read_meta(cache_dir)
    if max(config.layers) >= int(meta["n_layers"]) or int(meta["dim"]) != config.dim:
        raise CorpusError(
            f"cache of {meta['n_layers']} states of width {meta['dim']} does not fit {config}",
            path=Path(cache_dir) / "meta.json",
        )
    return str(meta["model"])
