"""Load on the REST server over loopback: N concurrent clients for a bounded time.

    .venv/bin/python benchmarks/bench_server_load.py [DATA] [--clients 20] [--seconds 60]
        [--workers N] [--utterances 200]

Starts ``pronscore serve`` on a free 127.0.0.1 port as a child process (``--workers`` scoring
processes; default: the server's own default, one per usable core), lets every client post
utterances to ``POST /v1/assess`` in a loop until the time is up, then stops the server.

DATA is a prepared dataset folder (``pronscore prepare``; its ``dev`` split is posted, encoded
as WAV), or a corpus-style folder with Kaldi ``wav.scp`` + ``text`` files (e.g. the
Speechocean762 corpus: every n-th utterance, sorted by id; ``wav.scp`` paths relative
to DATA), or a folder of audio files with a
``<name>.txt`` beside each. Without DATA the example clip (examples/we_call_it_bear.wav) is
posted over and over. Prints requests, failed requests, latency percentiles, throughput in
utterances per second (and per core used), status codes and the peak RSS of the server and its
workers together, and the CPU time spent per scored utterance (useful on a shared machine,
where wall-clock numbers depend on everyone else's load). Only loopback traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = (REPO / "examples/we_call_it_bear.wav", "We call it bear")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
Utterance = tuple[str, bytes, str]  # file name, encoded audio, text


def _spread(items: list, limit: int) -> list:
    step = max(1, len(items) // limit)
    return items[::step][:limit]


def _from_prepared(path: Path, limit: int) -> list[Utterance]:
    import soundfile as sf

    from pronscore.constants import SAMPLE_RATE
    from pronscore.dataset import load_split

    dev = load_split(path, "dev")
    out = []
    for i in _spread(list(range(len(dev))), limit):
        row = dev[i]
        buf = io.BytesIO()
        sf.write(buf, row["audio"], SAMPLE_RATE, format="WAV", subtype="PCM_16")
        out.append((f"{row['id']}.wav", buf.getvalue(), row["text"]))
    return out


def _kaldi_table(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split(maxsplit=1) for line in lines if line.strip())


def _from_folder(path: Path, limit: int) -> list[Utterance]:
    pairs: list[tuple[Path, str]] = []
    for scp in sorted(path.glob("**/wav.scp")):
        texts = _kaldi_table(scp.parent / "text")
        wavs = _kaldi_table(scp)
        pairs += [(path / wavs[u], texts[u]) for u in sorted(wavs) if u in texts]
    if not pairs:
        audio = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        pairs = [(p, p.with_suffix(".txt").read_text().strip()) for p in audio
                 if p.with_suffix(".txt").is_file()]  # fmt: skip
    if not pairs:
        raise SystemExit(f"{path}: no wav.scp + text and no audio files with a .txt beside them")
    return [(p.name, p.read_bytes(), text) for p, text in _spread(pairs, limit)]


def load_utterances(data: Path | None, limit: int) -> tuple[list[Utterance], str]:
    """The utterances to post and a one-line description of where they came from."""
    if data is None:
        path, text = EXAMPLE
        return [(path.name, path.read_bytes(), text)], f"one utterance, {path.name}"
    if (data / "dataset_dict.json").is_file():
        return _from_prepared(data, limit), f"dev split of {data.name}"
    return _from_folder(data, limit), f"files under {data.name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            r = httpx.get(url + "/health", timeout=1.0)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start in time")


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker that just ended
            total += p.memory_info().rss
    return total


def _tree_cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of the server and its live workers."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, help="prepared dataset or folder (see above)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=None, help="server default when omitted")
    ap.add_argument("--max-queue", type=int, default=32)
    ap.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="the server's --timeout (its default if omitted)",
    )
    ap.add_argument("--utterances", type=int, default=200, help="at most this many, spread")
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    utts, source = load_utterances(args.data, args.utterances)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "pronscore.cli", "serve", "--port", str(port),
           "--model", args.model, "--max-queue", str(args.max_queue),
           "--log-level", "warning"]  # fmt: skip
    if args.timeout is not None:  # a server from before --timeout existed can be measured too
        cmd += ["--timeout", str(args.timeout)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    t0 = time.monotonic()
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak_rss = 0
    results: list[tuple[float, int | str]] = []
    lock = threading.Lock()
    stop_at = 0.0

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=(args.timeout or 30.0) + 30) as c:
            i = offset
            while time.monotonic() < stop_at:
                name, payload, text = utts[i % len(utts)]
                i += 1
                t = time.perf_counter()
                try:
                    r = c.post("/v1/assess", files={"audio": (name, payload)},
                               data={"text": text})  # fmt: skip
                    code: int | str = r.status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with lock:
                    results.append((time.perf_counter() - t, code))

    try:
        info = _wait_ready(url, server)
        startup = time.monotonic() - t0
        proc = psutil.Process(server.pid)
        cpu0 = _tree_cpu(proc)
        start = time.monotonic()
        stop_at = start + args.seconds
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            peak_rss = max(peak_rss, _tree_rss(proc))
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        cpu = _tree_cpu(proc) - cpu0
        final = httpx.get(url + "/health", timeout=10).json()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    codes = Counter(code for _, code in results)
    ok = [lat for lat, code in results if code == 200]
    failed = len(results) - len(ok)
    cores = min(info["workers"], len(os.sched_getaffinity(0)))
    timeout = "default" if args.timeout is None else f"{args.timeout:g}"
    mode = info.get("mode", "threads")  # servers before worker processes had no "mode"
    print(f"{args.clients} clients x {args.seconds:g} s on loopback; server {mode}, "
          f"{info['workers']} workers, --max-queue {args.max_queue}, --timeout {timeout}, "
          f"model {args.model}; {len(utts)} utterances ({source}); machine: "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"server startup (to /health): {startup:.1f} s")
    print(f"requests: {len(results)}; failed: {failed}; status codes: {dict(codes)}")
    if ok:
        print(f"latency (200s): p50 {_pct(ok, 0.5):.2f} s, p95 {_pct(ok, 0.95):.2f} s, "
              f"p99 {_pct(ok, 0.99):.2f} s, max {max(ok):.2f} s, "
              f"mean {statistics.mean(ok):.2f} s")  # fmt: skip
    rate = len(ok) / elapsed
    print(f"throughput: {rate:.2f} utt/s in {elapsed:.1f} s = {rate / cores:.2f} utt/s per core "
          f"({cores} cores used)")  # fmt: skip
    if ok:  # what the machine's load does not change much, unlike wall time
        print(f"CPU per scored utterance (server + workers): {cpu / len(ok):.2f} s")
    keys = ("scored", "cancelled", "dropped", "timed_out", "rejected")
    print("server counters: " + ", ".join(f"{k} {final.get(k, 'n/a')}" for k in keys))
    print(f"peak RSS, server + workers: {peak_rss / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
