"""Scorer speed and memory on one core: warm latency over real dev utterances, cold start, peak RSS.

    .venv/bin/python benchmarks/bench_scorer.py --data DATASET_DIR [--split dev] [--n 60]
        [--model default] [--cold-runs 3] [--json OUT.json]

Goals (issue 10): default model warm <= 0.25 s wall for a ~4 s utterance (median over >= 50 dev
utterances; p50/p95 and RTF reported), cold start of `pronscore score` (process start -> JSON
printed) <= 2 s, peak RSS of that `pronscore score` process <= 300 MB. Everything runs in child
processes pinned to one CPU with one thread per numeric library. Wall time includes waiting for
the CPU on a busy machine; CPU time is what an idle core needs, so both are printed. To compare
code versions side by side, run the same command with ``PYTHONPATH=<other checkout>/src``:
children inherit it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _one_core() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def warm_child(model: str, data: str, split: str, n: int) -> dict:
    """Load once, score one utterance to warm up, then each of ``n`` utterances once."""
    import warnings

    warnings.simplefilter("ignore")
    from pronscore.dataset import load_split
    from pronscore.scorer import Scorer

    scorer = Scorer.from_pretrained(model)
    ds = load_split(data, split)
    rows = [ds[i] for i in range(min(n, len(ds)))]
    first = rows[0]
    scorer.score(np.asarray(first["audio"], np.float32), first["text"])
    wall, cpu, dur, status = [], [], [], []
    for r in rows:
        x = np.asarray(r["audio"], np.float32)
        t, c = time.perf_counter(), time.process_time()
        a = scorer.score(x, r["text"])
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        dur.append(x.size / 16000)
        status.append(a.status)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": wall, "cpu": cpu, "dur": dur, "status": status, "peak_rss_mb": rss}


def cold_start(model: str, audio: Path, text: str) -> float:
    """`pronscore score AUDIO --text T --json`: process start -> JSON printed."""
    cmd = [sys.executable, "-m", "pronscore.cli", "score", str(audio), "--text", text]
    t = time.perf_counter()
    out = subprocess.run([*cmd, "--json", "--model", model], capture_output=True, check=True)
    elapsed = time.perf_counter() - t
    json.loads(out.stdout)
    return elapsed


def _pct(xs, q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def report(res: dict, cold: list[float], model: str) -> dict:
    wall, cpu, dur = (np.asarray(res[k]) for k in ("wall", "cpu", "dur"))
    near4 = (dur >= 3.5) & (dur <= 4.5)
    out = {
        "model": model,
        "n": int(wall.size),
        "median_duration_s": float(np.median(dur)),
        "wall_p50_s": _pct(wall, 50),
        "wall_p95_s": _pct(wall, 95),
        "cpu_p50_s": _pct(cpu, 50),
        "cpu_p95_s": _pct(cpu, 95),
        "rtf_p50": float(np.median(wall / dur)),
        "n_3.5_to_4.5_s": int(near4.sum()),
        "wall_p50_4s_s": float(np.median(wall[near4])) if near4.any() else None,
        "cpu_p50_4s_s": float(np.median(cpu[near4])) if near4.any() else None,
        "cold_start_s": sorted(cold),
        "statuses": {s: res["status"].count(s) for s in set(res["status"])},
        "load_average": os.getloadavg()[0],
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="DATASET_DIR from `pronscore prepare`")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--n", type=int, default=60, help="utterances scored warm (first N)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    _one_core()
    if args.child:
        print(json.dumps(warm_child(args.model, args.data, args.split, args.n)))
        return
    from pronscore.dataset import load_split

    row = load_split(args.data, args.split)[0]
    with tempfile.TemporaryDirectory() as d:
        import soundfile as sf

        wav = Path(d) / "utt.wav"
        sf.write(wav, np.asarray(row["audio"], np.float32), 16000)
        cold = [cold_start(args.model, wav, row["text"]) for _ in range(args.cold_runs)]
    # peak RSS of `pronscore score` (only its children have ended so far): the scorer's memory
    score_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    cmd = [sys.executable, __file__, "--child", "--data", args.data, "--split", args.split]
    cmd += ["--n", str(args.n), "--model", args.model]
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    out = report(res, cold, args.model)
    out["peak_rss_mb"] = score_rss
    out["warm_process_rss_mb"] = res["peak_rss_mb"]  # + the datasets library and N utterances
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
