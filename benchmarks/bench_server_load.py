"""Load on the REST server over loopback: N concurrent clients for a bounded time.

    .venv/bin/python benchmarks/bench_server_load.py [--clients 20] [--seconds 30] [--workers 2]

Starts ``pronscore serve`` on a free 127.0.0.1 port as a child process, lets every client post a
real utterance to ``POST /v1/assess`` in a loop until the time is up (each request has a 120 s
timeout), then stops the server. Prints throughput, latency percentiles, status codes and the
server's peak RSS. Goal (issue 6): zero failed requests. Only loopback traffic.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(Path(__file__).parent))
from bench_scorer import pick_utterance  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start in time")


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-queue", type=int, default=32)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    audio, text = pick_utterance()
    payload = audio.read_bytes()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "pronscore.cli", "serve", "--port", str(port),
           "--model", args.model, "--workers", str(args.workers),
           "--max-queue", str(args.max_queue), "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    peak_rss = 0
    results: list[tuple[float, int | str]] = []
    lock = threading.Lock()
    stop_at = 0.0

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120.0) as c:
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                try:
                    r = c.post("/v1/assess", files={"audio": (audio.name, payload)},
                               data={"text": text})  # fmt: skip
                    code: int | str = r.status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with lock:
                    results.append((time.perf_counter() - t, code))

    try:
        _wait_ready(url, server)
        proc = psutil.Process(server.pid)
        start = time.monotonic()
        stop_at = start + args.seconds
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            peak_rss = max(peak_rss, proc.memory_info().rss)
            time.sleep(0.1)
        elapsed = time.monotonic() - start
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()

    codes = Counter(code for _, code in results)
    ok = [lat for lat, code in results if code == 200]
    failed = len(results) - len(ok)
    print(f"{args.clients} clients x {args.seconds:g} s on loopback, server --workers "
          f"{args.workers} --max-queue {args.max_queue}, model {args.model}, "
          f"audio {audio.name}")  # fmt: skip
    print(f"requests: {len(results)} in {elapsed:.1f} s = {len(results) / elapsed:.2f} req/s; "
          f"status codes: {dict(codes)}; failed: {failed}")  # fmt: skip
    if ok:
        print(f"latency (200s): p50 {_pct(ok, 0.5):.2f} s, p90 {_pct(ok, 0.9):.2f} s, "
              f"p99 {_pct(ok, 0.99):.2f} s, max {max(ok):.2f} s, "
              f"mean {statistics.mean(ok):.2f} s")  # fmt: skip
    print(f"server peak RSS: {peak_rss / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
