"""The server's worker processes, admission, timeout and disconnects, over real loopback HTTP
(uvicorn in a thread, 127.0.0.1 only). Uses the bundled example recording; no corpus needed."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import uvicorn
from fastapi.testclient import TestClient

from pronscore.audio import load_audio
from pronscore.constants import SAMPLE_RATE
from pronscore.scorer import Scorer
from pronscore.server.app import ServerConfig, create_app

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "we_call_it_bear.wav"
TEXT = "We call it bear"
REPEATS = 12  # ~19 s of speech: a job that keeps a worker busy for seconds


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.from_pretrained("default")


@pytest.fixture(scope="module")
def bear() -> bytes:
    return EXAMPLE.read_bytes()


@pytest.fixture(scope="module")
def long_bear() -> tuple[bytes, str]:
    buf = io.BytesIO()
    sf.write(buf, np.tile(load_audio(EXAMPLE), REPEATS), SAMPLE_RATE, format="WAV")
    return buf.getvalue(), " ".join([TEXT] * REPEATS)


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def wait_for(cond: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def health(url: str) -> dict:
    return httpx.get(url + "/health", timeout=10).json()


def post(url: str, data: bytes, text: str = TEXT) -> httpx.Response:
    files = {"audio": ("a.wav", data)}
    return httpx.post(url + "/v1/assess", files=files, data={"text": text}, timeout=120)


def open_request(url: str, body: bytes | None = None, length: int = 1_000_000) -> socket.socket:
    """A raw POST /v1/assess: headers only (``body=None``, announcing ``length`` bytes that
    never come) or a whole multipart request; the socket stays open."""
    port = int(url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    ctype = "multipart/form-data; boundary=b"
    if body is not None:
        req = httpx.Request("POST", url, files={"audio": ("a.wav", body)}, data={"text": TEXT})
        body, ctype = req.read(), req.headers["content-type"]
    head = (
        f"POST /v1/assess HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length if body is None else len(body)}\r\n\r\n"
    )
    s.sendall(head.encode() + (body or b""))
    return s


def read_response(s: socket.socket) -> tuple[int, str]:
    """Status code and the raw head + body of a response that closes the connection."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    raw = b"".join(chunks).decode()
    return int(raw.split(" ", 2)[1]), raw


@pytest.fixture(scope="module")
def process_server() -> Iterator[str]:
    """Two worker processes, one waiting place: room for three scoring requests."""
    app = create_app(ServerConfig(workers=2, max_queue=1, timeout=120))
    with serving(app) as url:
        yield url


def test_two_worker_processes_score_like_the_python_api(
    process_server: str, scorer: Scorer, bear: bytes
) -> None:
    before = health(process_server)
    assert before["mode"] == "processes" and before["workers"] == 2
    assert before["model"] == "default"
    replies: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: replies.append(post(process_server, bear)))]
    threads.append(threading.Thread(target=lambda: replies.append(post(process_server, bear))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = scorer.score(bear, TEXT).to_dict()
    assert [r.status_code for r in replies] == [200, 200]
    assert [r.json() for r in replies] == [expected, expected]
    assert health(process_server)["scored"] == before["scored"] + 2


def test_saturated_server_answers_503_without_reading_the_upload(process_server: str) -> None:
    before = health(process_server)
    holders = [open_request(process_server) for _ in range(3)]  # admitted, body never sent
    try:
        wait_for(lambda: health(process_server)["admitted"] == 3, "holders not admitted")
        status, raw = read_response(open_request(process_server))  # no body either
    finally:
        for s in holders:
            s.close()
    assert status == 503
    assert "retry-after: 2" in raw.lower() and "server busy" in raw
    wait_for(lambda: health(process_server)["admitted"] == 0, "holders not released")
    after = health(process_server)
    assert after["rejected"] == before["rejected"] + 1
    assert after["scored"] == before["scored"]


def test_a_client_gone_while_queued_is_never_scored(
    process_server: str, long_bear: tuple[bytes, str], bear: bytes
) -> None:
    before = health(process_server)
    data, text = long_bear
    replies: list[httpx.Response] = []
    busy = [threading.Thread(target=lambda: replies.append(post(process_server, data, text)))]
    busy.append(threading.Thread(target=lambda: replies.append(post(process_server, data, text))))
    for t in busy:
        t.start()
    wait_for(lambda: health(process_server)["busy"] == 2, "workers not busy")
    queued = open_request(process_server, body=bear)
    wait_for(lambda: health(process_server)["waiting"] == 1, "request not queued")
    queued.close()
    wait_for(
        lambda: health(process_server)["cancelled"] == before["cancelled"] + 1, "not cancelled"
    )
    for t in busy:
        t.join()
    after = health(process_server)
    assert [r.status_code for r in replies] == [200, 200]
    assert after["scored"] == before["scored"] + 2  # the two long jobs only
    assert after["waiting"] == 0 and after["busy"] == 0


def test_timeout_answers_504_and_frees_the_worker(scorer: Scorer, bear: bytes) -> None:
    app = create_app(ServerConfig(workers=1, timeout=0.01), scorer=scorer)
    with TestClient(app) as client:  # one event loop for all requests, like a real server
        r = client.post("/v1/assess", files={"audio": ("a.wav", bear)}, data={"text": TEXT})
        assert r.status_code == 504
        assert r.json()["detail"].startswith("scoring did not finish within the 0.01 s limit")
        wait_for(lambda: client.get("/health").json()["busy"] == 0, "worker not freed")
        h = client.get("/health").json()
        assert h["timed_out"] == 1 and h["mode"] == "threads"


def test_in_process_mode_scores_in_a_thread(scorer: Scorer, bear: bytes) -> None:
    app = create_app(ServerConfig(workers=0), scorer=scorer)
    with TestClient(app) as client:
        r = client.post("/v1/assess", files={"audio": ("a.wav", bear)}, data={"text": TEXT})
        h = client.get("/health").json()
    assert r.status_code == 200 and r.json() == scorer.score(bear, TEXT).to_dict()
    assert h["mode"] == "threads" and h["workers"] == 1 and h["scored"] == 1
