"""Scorer speed and memory on one core: warm latency for a ~4 s utterance, cold start, peak RSS.

    .venv/bin/python benchmarks/bench_scorer.py [--model default] [--repeats 20]

Goals (issue 6): warm latency <= 0.25 s, peak RSS <= 300 MB. Uses a real ~4 s Speechocean762
utterance when the corpus ($PRONSCORE_CORPUS, else ../shared/data/speechocean762) is present,
else the bundled example. Cold start (import + load + first score) and peak RSS are measured in
fresh child processes pinned to one CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("PRONSCORE_CORPUS", REPO.parent / "shared/data/speechocean762"))
CANDIDATES = (
    (CORPUS / "WAVE/SPEAKER0005/000050114.flac", None),  # 3.9 s, text from train/text
    (REPO / "examples/the_sun_is_shining.wav", "The sun is shining today"),
    (REPO / "examples/we_call_it_bear.wav", "We call it bear"),
)


def _one_core() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def pick_utterance() -> tuple[Path, str]:
    for path, text in CANDIDATES:
        if path.is_file():
            if text is None:
                lines = (CORPUS / "train/text").read_text().splitlines()
                text = dict(line.split(maxsplit=1) for line in lines)[path.stem]
            return path, text
    raise SystemExit("no benchmark audio: need ../shared or examples/*.wav")


def child(model: str, path: str, text: str, repeats: int) -> None:
    """Runs in a fresh process: cold start, warm latencies, peak RSS, as one JSON line."""
    t0 = time.perf_counter()
    from pronscore.audio import load_audio
    from pronscore.scorer import Scorer

    t_import = time.perf_counter() - t0
    scorer = Scorer.from_pretrained(model)
    t_load = time.perf_counter() - t0 - t_import
    samples = load_audio(path)
    t1 = time.perf_counter()
    first = scorer.score(samples, text)
    t_first = time.perf_counter() - t1
    warm, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        scorer.score(samples, text)
        warm.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    t = time.perf_counter()
    scorer.score(path, text)  # file decoding included
    from_file = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "duration_s": len(samples) / 16000, "status": first.status,
        "import_s": t_import, "load_s": t_load, "first_score_s": t_first,
        "cold_start_s": t_import + t_load + t_first, "warm_s": warm, "warm_cpu_s": cpu,
        "warm_from_file_s": from_file, "peak_rss_mb": rss_mb,
    }))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("AUDIO", "TEXT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    _one_core()
    if args.child:
        child(args.model, args.child[0], args.child[1], args.repeats)
        return
    path, text = pick_utterance()
    runs = []
    for i in range(args.cold_runs):
        cmd = [sys.executable, __file__, "--model", args.model, "--child", str(path), text]
        cmd += ["--repeats", str(args.repeats if i == 0 else 0)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    warm = sorted(runs[0]["warm_s"])
    cold = [r["cold_start_s"] for r in runs]
    print(f"audio: {path.name} ({runs[0]['duration_s']:.2f} s) \"{text}\", model {args.model}, "
          f"1 core, status {runs[0]['status']}")  # fmt: skip
    print(f"warm latency over {len(warm)} runs: median {statistics.median(warm):.3f} s, "
          f"p90 {warm[int(0.9 * (len(warm) - 1))]:.3f} s, min {warm[0]:.3f} s "
          f"(goal <= 0.25 s); from file {runs[0]['warm_from_file_s']:.3f} s")  # fmt: skip
    cpu = runs[0]["warm_cpu_s"]
    print(f"warm CPU time per score: median {statistics.median(cpu):.3f} s "
          f"(what one idle core needs; wall time above includes waiting on a busy machine; "
          f"load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"real-time factor (median): {statistics.median(warm) / runs[0]['duration_s']:.3f}")
    r0 = runs[0]
    print(f"cold start (import + load + first score), {len(cold)} runs: "
          f"median {statistics.median(cold):.2f} s  [import {r0['import_s']:.2f} s, "
          f"load {r0['load_s']:.2f} s, first score {r0['first_score_s']:.2f} s]")  # fmt: skip
    print(f"peak RSS: {max(r['peak_rss_mb'] for r in runs):.0f} MB (goal <= 300 MB)")


if __name__ == "__main__":
    main()
