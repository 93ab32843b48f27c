"""Real-time factor and peak memory of pocketsphinx alignment + features on real utterances.

    nice .venv/bin/python benchmarks/bench_align.py [--data data/so762] [--n 100]

``--data`` is a dataset written by ``pronscore prepare`` (default: ``$PRONSCORE_DATA``, else
``data/so762``).

RTF = CPU seconds (this process, one core) / seconds of audio, over ``--n`` train utterances
(evenly spread over the split). Prints the total and a per-stage split; peak RSS from getrusage.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np

from pronscore.acoustic.pocketsphinx import ModelConfig, samples_to_raw
from pronscore.align.viterbi import viterbi_align
from pronscore.constants import SAMPLE_RATE
from pronscore.dataset import load_split
from pronscore.features.extract import Extractor, ExtractorConfig, extract_utterance


def _cpu() -> float:
    return time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("PRONSCORE_DATA", "data/so762"))
    )
    ap.add_argument("--split", default="train")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--no-phone-loop", action="store_true", help="skip the free phone loop")
    ap.add_argument("--aligner", choices=("pocketsphinx", "viterbi"), default="pocketsphinx")
    args = ap.parse_args()

    ds = load_split(args.data, args.split)
    idx = np.linspace(0, len(ds) - 1, min(args.n, len(ds))).astype(int).tolist()
    meta = ds.remove_columns(["audio"]).select(idx)
    audio = ds.select_columns(["audio"]).with_format("numpy").select(idx)
    items = [
        (np.asarray(audio[i]["audio"], np.float32), [(w["text"], tuple(w["phones"])) for w in m])
        for i, m in enumerate(meta["words"])
    ]
    seconds = sum(x.size for x, _ in items) / SAMPLE_RATE

    t0 = _cpu()
    model_cfg = ModelConfig(aligner=args.aligner)
    extractor = Extractor(ExtractorConfig(model=model_cfg, phone_loop=not args.no_phone_loop))
    startup = _cpu() - t0
    model = extractor.aligner.model

    # stage split on the same utterances: forced alignment, phone loop, the rest
    forced = loop = 0.0
    for x, words in items:
        raw = samples_to_raw(x)
        t = _cpu()
        if args.aligner == "viterbi":  # the phone loop pass is the alignment's only pass
            senscr, _ = model.senones_and_loop(raw)
            viterbi_align(senscr, [p for _, p in words], model.mdef)
            forced += _cpu() - t
            continue
        model.force_align(raw, [p for _, p in words])
        forced += _cpu() - t
        if not args.no_phone_loop:
            t = _cpu()
            model.phone_loop(raw)
            loop += _cpu() - t

    t = _cpu()
    wall = time.perf_counter()
    ok = 0
    per_utt = []
    for x, words in items:
        u = _cpu()
        feats = extract_utterance(x, words, extractor=extractor)
        per_utt.append((_cpu() - u) / (x.size / SAMPLE_RATE))
        ok += feats.alignment.ok
    total = _cpu() - t
    wall = time.perf_counter() - wall
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"utterances            {len(items)} ({ok} aligned ok), audio {seconds:.1f} s")
    print(f"decoder start-up      {startup:.3f} s CPU")
    print(f"RTF alignment+features {total / seconds:.4f}  (CPU {total:.2f} s, wall {wall:.2f} s)")
    med, p90 = np.median(per_utt), np.percentile(per_utt, 90)
    print(f"  per utterance RTF   median {med:.4f}, p90 {p90:.4f}")
    passes = "1 pass + numpy Viterbi" if args.aligner == "viterbi" else "2 decoder passes"
    print(f"  forced alignment    {forced / seconds:.4f}  ({passes})")
    print(f"  free phone loop     {loop / seconds:.4f}")
    print(f"  features + rest     {(total - forced - loop) / seconds:.4f}")
    print(f"mean time per utt     {total / len(items):.3f} s CPU")
    print(f"peak RSS              {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
