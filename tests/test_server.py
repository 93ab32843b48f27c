"""REST server with the shipped default model: the API, its limits and every bad input as a 4xx
(never a 500), bounded concurrency (503 + Retry-After when saturated)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
from fastapi.testclient import TestClient

from pronscore.audio import load_audio
from pronscore.constants import SAMPLE_RATE
from pronscore.scorer import Scorer
from pronscore.server.app import ServerConfig, create_app

UTT = "WAVE/SPEAKER0001/000010011.flac"
TEXT = "We call it bear"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.from_pretrained("default")


@pytest.fixture(scope="module")
def client(scorer: Scorer) -> TestClient:
    return TestClient(create_app(ServerConfig(workers=1), scorer=scorer))


@pytest.fixture(scope="module")
def bear(corpus_dir: Path) -> np.ndarray:
    return load_audio(corpus_dir / UTT)


def wav(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def post(client: TestClient, data: bytes, text: str = TEXT, name: str = "a.wav"):
    return client.post("/v1/assess", files={"audio": (name, data)}, data={"text": text})


def test_health_info_docs_and_page(client: TestClient) -> None:
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["model"] == "default" and h["workers"] == 1
    info = client.get("/v1/info").json()
    assert info["limits"]["max_upload_bytes"] == 10 * 1024 * 1024
    assert info["limits"]["max_duration_s"] == 60 and TEXT in info["sentences"]
    assert "/v1/assess" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and 'id="record"' in page.text
    assert "encodeWav" in client.get("/static/app.js").text


@pytest.mark.realdata
def test_assess_real_utterance_matches_the_python_api(
    client: TestClient, scorer: Scorer, corpus_dir: Path
) -> None:
    data = (corpus_dir / UTT).read_bytes()
    r = post(client, data, name="bear.flac")
    assert r.status_code == 200
    body = r.json()
    assert body == scorer.score(data, TEXT).to_dict()
    assert body["status"] == "ok" and len(body["words"]) == 4
    assert set(body["utterance"]) == {"accuracy", "completeness", "fluency", "prosodic", "total"}


@pytest.mark.realdata
def test_rates_channels_lexicon_and_mismatch_are_scored(
    client: TestClient, bear: np.ndarray
) -> None:
    x44 = soxr.resample(bear, SAMPLE_RATE, 44100)
    cases = {
        "16k": post(client, wav(bear)),
        "8k": post(client, wav(soxr.resample(bear, SAMPLE_RATE, 8000), 8000)),
        "44k-stereo": post(client, wav(np.stack([x44, x44], axis=1), 44100)),
        "unknown-word": post(client, wav(bear), "We call it Zorblax"),
        "mismatch": post(client, wav(bear), "Please open the window before lunch"),
    }
    for name, r in cases.items():
        assert r.status_code == 200, (name, r.text)
    for name in ("16k", "8k", "44k-stereo", "unknown-word"):  # the mismatch: see test_scorer
        assert cases[name].json()["status"] == "ok", (name, cases[name].json()["reason"])
    total = {name: r.json()["utterance"]["total"] for name, r in cases.items()}
    for name in ("8k", "44k-stereo"):  # the same reading: the same scores (measured 8.6, 8.4)
        assert total[name] == pytest.approx(total["16k"], abs=0.5), name
    unknown = cases["unknown-word"].json()
    assert "ZORBLAX" in unknown["reason"]
    assert [w["mispronounced"] for w in unknown["words"]] == [False, False, False, True]
    assert total["mismatch"] < total["16k"] - 1.0  # measured 6.3 vs 8.4


def test_silence_and_noise_are_results_not_errors(client: TestClient) -> None:
    r = post(client, wav(np.zeros(2 * SAMPLE_RATE, np.float32)))
    assert r.status_code == 200
    assert r.json()["status"] == "failed" and "silent" in r.json()["reason"]
    noise = 0.3 * np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE)
    r = post(client, wav(noise.astype(np.float32)))
    assert r.status_code == 200
    assert r.json()["status"] == "mismatch" and "none of the text" in r.json()["reason"]


def test_bad_audio_and_text_are_422_with_a_clear_message(client: TestClient) -> None:
    speech = wav(0.1 * np.sin(np.arange(SAMPLE_RATE) * 0.05).astype(np.float32))
    cases = {
        "corrupt": (post(client, b"RIFF\x00\x00\x00\x00WAVEjunk", name="c.wav"), "cannot decode"),
        "empty file": (post(client, b"", name="e.wav"), "e.wav: audio is empty (0 bytes)"),
        "empty text": (post(client, speech, ""), "text is empty"),
        "non-ascii": (post(client, speech, "你好世界"), "English letters"),
        "too much text": (post(client, speech, "word " * 300), "longer than"),
    }
    for name, (r, msg) in cases.items():
        assert r.status_code == 422, (name, r.text)
        assert msg in r.json()["detail"], (name, r.json())
    assert "<_io" not in cases["corrupt"][0].json()["detail"]
    r = client.post("/v1/assess", data={"text": TEXT})
    assert r.status_code == 422 and "audio" in r.json()["detail"]


def test_limits_are_413(scorer: Scorer) -> None:
    small = TestClient(create_app(ServerConfig(max_upload_bytes=100_000), scorer=scorer))
    big = wav(np.zeros(5 * SAMPLE_RATE, np.float32))  # 160 kB
    r = post(small, big)
    assert r.status_code == 413 and "MB limit" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(4):
            yield b"x" * 60_000

    r = small.post("/v1/assess", content=chunks(), headers={"content-type": "multipart/form-data"})
    assert r.status_code == 413
    long = wav(np.zeros(180 * SAMPLE_RATE, np.float32))  # 3 minutes, 5.8 MB < 10 MB
    r = post(TestClient(create_app(ServerConfig(), scorer=scorer)), long)
    assert r.status_code == 413 and "180.0 s long; the limit is 60 s" in r.json()["detail"]


async def _concurrent(app, n: int, payload: bytes) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        reqs = [
            c.post("/v1/assess", files={"audio": ("a.wav", payload)}, data={"text": TEXT})
            for _ in range(n)
        ]
        return await asyncio.gather(*reqs)


def test_saturation_gives_503_with_retry_after_and_a_queue_absorbs_bursts(
    scorer: Scorer,
) -> None:
    rng = np.random.default_rng(1)
    payload = wav((0.2 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32))
    no_queue = create_app(ServerConfig(workers=1, max_queue=0), scorer=scorer)
    codes = [r.status_code for r in asyncio.run(_concurrent(no_queue, 3, payload))]
    assert sorted(codes) == [200, 503, 503]
    busy = next(r for r in asyncio.run(_concurrent(no_queue, 2, payload)) if r.status_code == 503)
    assert busy.headers["retry-after"] == "2" and "busy" in busy.json()["detail"]
    queued = create_app(ServerConfig(workers=2, max_queue=4), scorer=scorer)
    codes = [r.status_code for r in asyncio.run(_concurrent(queued, 4, payload))]
    assert codes == [200] * 4
