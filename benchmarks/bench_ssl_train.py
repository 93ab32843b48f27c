"""Training throughput of the SSL recipe vs the seed's, same backbone at real size.

Both recipes train the same ``SslScorer`` (strategy ``freeze``, random weights from the
wav2vec2-base or -large config) on random noise (speed does not depend on content) with the
durations of the Speechocean762 train split. Each recipe orders the WHOLE split into batches as
its training epoch would (length grouping needs the whole split: HF's sampler shrinks its
mega-batches on small datasets, so grouping a 24-utterance sample measures nothing), then times
the same number of batches picked at random from its epoch: an unbiased estimate of epoch
throughput within a short budget.

* seed: fp32, batch 4, random order, padded to the longest, no attention mask;
* ours: length-grouped batches of ``--batch`` (default 4), dynamic padding with masks, crops
  at 15 s, bf16 autocast on a GPU.

Each recipe runs in a fresh process (peak memory is per process: max RSS on CPU, max allocated
on GPU) over one pass of ``--utts`` utterances, stopping early at ``--budget`` seconds.

    nice python benchmarks/bench_ssl_train.py --utts 24 --repeats 2 --threads 1 \\
        --data data/so762
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

import numpy as np

DURATIONS_FALLBACK = (2.0, 3.0, 4.0, 5.0, 8.0, 12.0)


def durations(seed: int, data: str | None) -> list[float]:
    """The train split's durations, or 2,000 draws from a fallback set."""
    if data:
        from pronscore.dataset import load_split

        return [float(d) for d in load_split(data, "train")["duration"]]
    return [float(d) for d in np.random.default_rng(seed).choice(DURATIONS_FALLBACK, 2000)]


def batches(durs: list[float], recipe: str, batch: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    if recipe == "seed":
        order = rng.permutation(len(durs)).tolist()
        return [order[i : i + 4] for i in range(0, len(order), 4)]
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    g = torch.Generator().manual_seed(seed)
    order = list(LengthGroupedSampler(batch, lengths=durs, generator=g))
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def pick_batches(durs: list[float], recipe: str, batch: int, n_utts: int, seed: int):
    """``ceil(n_utts / batch)`` batches drawn at random from the recipe's whole epoch."""
    epoch = batches(durs, recipe, batch, seed)
    k = min(len(epoch), -(-n_utts // batch))
    return [epoch[i] for i in np.random.default_rng(seed + 1).choice(len(epoch), k, replace=False)]


def run_recipe(recipe: str, size: str, durs: list[float], chosen: list[list[int]],
               budget: float, threads: int, queue) -> None:  # fmt: skip
    import torch
    from transformers import Wav2Vec2Config

    from pronscore.models.ssl import SslConfig, SslScorer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = Wav2Vec2Config() if size == "base" else Wav2Vec2Config(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        feat_extract_norm="layer", do_stable_layer_norm=True)  # fmt: skip
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    model = SslScorer(SslConfig(backbone_config=cfg.to_dict(), strategy="freeze")).to(dev).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    rng = np.random.default_rng(1)
    crop = 15.0 if recipe == "ours" else None
    done, audio, t0 = 0, 0.0, time.perf_counter()
    for idx in chosen:
        lens = [int(16000 * (min(durs[i], crop) if crop else durs[i])) for i in idx]
        x = torch.zeros(len(idx), max(lens))
        mask = torch.zeros(len(idx), max(lens), dtype=torch.bool)
        for k, n in enumerate(lens):
            x[k, :n] = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
            mask[k, :n] = True
        if recipe == "seed":
            mask = torch.ones_like(mask)  # the seed pads and means over the padding
        labels = torch.rand(len(idx), 5)
        amp = cuda and recipe == "ours"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = model(x.to(dev), mask.to(dev), labels=labels.to(dev))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += len(idx)
        audio += sum(lens) / 16000
        if time.perf_counter() - t0 > budget:
            break
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    secs = time.perf_counter() - t0
    queue.put({"recipe": recipe, "utterances": done, "seconds": round(secs, 1),
               "utt_per_s": round(done / secs, 3), "audio_s": round(audio, 1),
               "peak_mem_mb": round(peak), "device": str(dev)})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["base", "large"], default="base")
    ap.add_argument("--utts", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4, help="ours (the seed's is 4)")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds per recipe")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs; best is kept")
    ap.add_argument("--data", default=None, help="prepared dataset: real duration distribution")
    args = ap.parse_args()
    durs = durations(0, args.data)
    chosen = {r: pick_batches(durs, r, 4 if r == "seed" else args.batch, args.utts, 0)
              for r in ("seed", "ours")}  # fmt: skip
    ctx = mp.get_context("spawn")
    best: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved: load from other jobs hits both recipes alike
        for recipe in ("seed", "ours"):
            q = ctx.Queue()
            p = ctx.Process(target=run_recipe, args=(recipe, args.size, durs, chosen[recipe],
                                                     args.budget, args.threads, q))  # fmt: skip
            p.start()
            r = q.get()
            p.join()
            print(json.dumps(r), flush=True)
            if recipe not in best or r["utt_per_s"] > best[recipe]["utt_per_s"]:
                best[recipe] = r
    speedup = best["ours"]["utt_per_s"] / best["seed"]["utt_per_s"]
    # random batches hold different amounts of speech: also compare real audio per second
    rate = {r: best[r]["audio_s"] / best[r]["seconds"] for r in best}
    print(json.dumps({"size": args.size, "utts": args.utts, "epoch_utts": len(durs),
                      "mean_duration_s": round(float(np.mean(durs)), 2),
                      "speedup": round(speedup, 2),
                      "audio_speedup": round(rate["ours"] / rate["seed"], 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
