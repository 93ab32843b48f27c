"""FastAPI app: ``POST /v1/assess`` (multipart audio + text) -> Assessment JSON, ``GET /health``,
``GET /v1/info`` and the recording page at ``/``.

Concurrency. Scoring is CPU work, so it runs in worker threads, never on the event loop. The
app holds ``workers`` scorers (each owns its own pocketsphinx decoders, which are not
thread-safe); a request borrows one for the duration of its scoring. At most ``max_queue``
further requests wait for a free scorer; beyond that the server answers ``503`` with a
``Retry-After`` header at once instead of building an unbounded backlog.

Limits. Request bodies larger than ``max_upload_bytes`` (+ a small allowance for the multipart
envelope) get ``413`` before they are parsed; audio longer than ``max_duration`` seconds gets
``413`` from its header, before it is decoded. Bad audio or text gets ``422`` with one clear
message in ``detail``; the handlers below make sure no input becomes a ``500``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated, Any

import soundfile as sf
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from pronscore import __version__
from pronscore.constants import MAX_DURATION_S
from pronscore.errors import AudioError, ModelError, PronscoreError, TextError
from pronscore.scorer import Scorer

log = logging.getLogger("pronscore.server")

MULTIPART_SLACK = 64 * 1024
"""Bytes allowed on top of the audio limit for the multipart envelope and the text field."""

MAX_TEXT_CHARS = 1000

EXAMPLE_SENTENCES = (
    "We call it bear",
    "The sun is shining today",
    "I have a lot of homework to do",
    "It is cold outside",
    "My favourite fruit is apple",
)


@dataclass(frozen=True)
class ServerConfig:
    """What ``pronscore serve`` can set; saved nowhere, echoed by ``GET /v1/info``."""

    model: str = "default"
    max_upload_bytes: int = 10 * 1024 * 1024
    max_duration: float = MAX_DURATION_S
    workers: int = 1
    max_queue: int = 32
    retry_after_s: int = 2


class Saturated(Exception):
    """Every scorer is busy and the waiting room is full."""


class TooLarge(Exception):
    """Upload or audio over a configured limit (-> 413)."""


class ScorerPool:
    """``workers`` scorers lent to one request each; a bounded number of requests may wait."""

    def __init__(self, scorers: list[Scorer], max_queue: int) -> None:
        self._scorers = scorers
        self._free: asyncio.Queue[Scorer] = asyncio.Queue()
        for s in scorers:
            self._free.put_nowait(s)
        self.max_queue = max_queue
        self.waiting = 0

    @property
    def size(self) -> int:
        return len(self._scorers)

    @property
    def busy(self) -> int:
        return self.size - self._free.qsize()

    @contextlib.asynccontextmanager
    async def borrow(self) -> AsyncIterator[Scorer]:
        if self._free.empty() and self.waiting >= self.max_queue:
            raise Saturated
        self.waiting += 1
        try:
            scorer = await self._free.get()
        finally:
            self.waiting -= 1
        try:
            yield scorer
        finally:
            self._free.put_nowait(scorer)


def _error(status: int, err: Exception, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"detail": str(err) or type(err).__name__, "error": type(err).__name__}
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: ``413`` for request bodies over ``max_bytes``, checked while reading.

    The body is buffered (it is small by construction) and replayed to the app, so a client
    that lies about or omits ``Content-Length`` cannot push more than the limit into memory.
    """

    def __init__(
        self, app: Callable[..., Awaitable[None]], max_bytes: int, slack: int = MULTIPART_SLACK
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes  # the audio limit users are told about
        self.limit = max_bytes + slack  # what the whole request body may hold

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        mb = self.max_bytes / 1024 / 1024
        too_large = TooLarge(f"upload is larger than the {mb:g} MB limit")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _error(413, too_large)(scope, receive, send)
            return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.limit:
                await _error(413, too_large)(scope, receive, send)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _named_bytes(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name  # error messages name the uploaded file
    return handle


def _header_duration(data: bytes) -> float | None:
    """Duration from the header, or ``None`` when the header cannot be read (decoding reports)."""
    try:
        info = sf.info(io.BytesIO(data))
    except Exception:  # corrupt or unknown: read_audio raises the clear AudioError later
        return None
    return info.frames / info.samplerate if info.samplerate else None


def assess_bytes(
    scorer: Scorer, data: bytes, filename: str, text: str, *, max_duration: float
) -> dict[str, Any]:
    """Blocking: limits, decoding and scoring of one upload (runs in a worker thread)."""
    if len(text) > MAX_TEXT_CHARS:
        raise TextError(f"text is longer than {MAX_TEXT_CHARS} characters", field="text")
    duration = _header_duration(data)
    if duration is not None and duration > max_duration:
        raise TooLarge(
            f"{filename}: audio is {duration:.1f} s long; the limit is {max_duration:g} s"
        )
    handle = _named_bytes(data, filename)
    return scorer.score(handle, text, max_duration=max_duration).to_dict()


def _static_dir() -> str:
    return str(resources.files("pronscore.server") / "static")


def create_app(config: ServerConfig | None = None, *, scorer: Scorer | None = None) -> FastAPI:
    """The app. ``scorer`` (optional) is used as the first worker; others are its forks."""
    config = config or ServerConfig()
    if config.workers < 1 or config.max_queue < 0:
        raise ValueError("workers must be >= 1 and max_queue >= 0")
    first = scorer or Scorer.from_pretrained(config.model)
    pool = ScorerPool([first, *(first.fork() for _ in range(config.workers - 1))], config.max_queue)

    app = FastAPI(
        title="pronscore",
        version=__version__,
        summary="Pronunciation assessment of English read speech (Speechocean762 scales).",
    )
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.state.pool = pool
    app.state.config = config

    @app.exception_handler(PronscoreError)
    async def _pronscore_error(_: Request, err: PronscoreError) -> JSONResponse:
        return _error(500 if isinstance(err, ModelError) else 422, err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'][1:])}: {e['msg']}" for e in err.errors()]
        return JSONResponse({"detail": "; ".join(parts), "error": "ValidationError"}, 422)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error while scoring")
        return _error(500, RuntimeError("internal error while scoring; see the server log"))

    @app.get("/health", summary="liveness and load")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": first.name,
            "workers": pool.size,
            "busy": pool.busy,
            "waiting": pool.waiting,
        }

    @app.get("/v1/info", summary="limits, model and example sentences (for the page)")
    async def info() -> dict[str, Any]:
        return {
            "model": first.name,
            "limits": {
                "max_upload_bytes": config.max_upload_bytes,
                "max_duration_s": config.max_duration,
                "max_text_chars": MAX_TEXT_CHARS,
            },
            "sentences": list(EXAMPLE_SENTENCES),
            "config": asdict(config),
        }

    @app.post(
        "/v1/assess",
        summary="score one recording against its text",
        responses={
            413: {"description": "upload or audio longer than the limits"},
            422: {"description": "bad audio (corrupt, empty) or text (empty, not English)"},
            503: {"description": "all scorers busy and the queue full; see Retry-After"},
        },
    )
    async def assess(
        audio: Annotated[UploadFile, File(description="audio file (WAV, FLAC, OGG; any rate)")],
        text: Annotated[str, Form(description="the sentence that was read")] = "",
    ) -> JSONResponse:
        data = await audio.read()
        name = audio.filename or "upload"
        if len(data) > config.max_upload_bytes:
            mb = config.max_upload_bytes / 1024 / 1024
            return _error(413, TooLarge(f"{name}: upload is larger than the {mb:g} MB limit"))
        try:
            async with pool.borrow() as s:
                result = await run_in_threadpool(
                    assess_bytes, s, data, name, text, max_duration=config.max_duration
                )
        except Saturated:
            err = Saturated(f"server busy ({pool.size} scoring, {pool.waiting} waiting)")
            return _error(503, err, {"Retry-After": str(config.retry_after_s)})
        except TooLarge as err:
            return _error(413, err)
        except AudioError as err:
            return _error(422, err)
        return JSONResponse(result)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("pronscore.server") / "static" / "index.html"
        return HTMLResponse(page.read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    return app
