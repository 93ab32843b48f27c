"""FastAPI app: ``POST /v1/assess`` (multipart audio + text) -> Assessment JSON, ``GET /health``,
``GET /v1/info`` and the recording page at ``/``.

Concurrency. Scoring is CPU work and pocketsphinx holds the GIL, so by default it runs in
``workers`` worker *processes* (one per usable core), each loading the model once; the event
loop only parses uploads and waits. ``workers=0`` scores in a thread of this process (one
scorer; for tests and small machines). See :mod:`pronscore.server.dispatch`.

Admission. At most ``workers + max_queue`` scoring requests are admitted at a time (uploading,
waiting or being scored). The check runs in the ASGI middleware on the request line and
headers, so a saturated server answers ``503`` with ``Retry-After`` *before* reading the
upload.

Time and disconnects. A request waits and is scored for at most ``timeout`` seconds, else
``504``. A client that goes away while its job waits is dropped from the queue (the job never
starts); one that goes away while its job runs cannot stop it (a worker process is not
interrupted), so the result is dropped when it arrives. ``GET /health`` counts ``scored``,
``failed``, ``cancelled``, ``dropped``, ``timed_out`` and ``rejected`` requests.

Limits. Request bodies larger than ``max_upload_bytes`` (+ a small allowance for the multipart
envelope) get ``413`` before they are parsed; audio longer than ``max_duration`` seconds gets
``413`` from its header, before it is decoded. Bad audio or text gets ``422`` with one clear
message in ``detail``; the handlers below make sure no input becomes a ``500``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pronscore import __version__
from pronscore.constants import MAX_DURATION_S
from pronscore.errors import ModelError, PronscoreError
from pronscore.parallel import usable_cores
from pronscore.server.dispatch import Backend, Dispatcher, ProcessBackend, ThreadBackend
from pronscore.server.worker import (
    MAX_TEXT_CHARS,
    Job,
    Reply,
    TooLarge,
    assess_bytes,
    error_body,
)

if TYPE_CHECKING:
    from pronscore.scorer import Scorer

__all__ = ["MAX_TEXT_CHARS", "ServerConfig", "TooLarge", "assess_bytes", "create_app"]

log = logging.getLogger("pronscore.server")

MULTIPART_SLACK = 64 * 1024
"""Bytes allowed on top of the audio limit for the multipart envelope and the text field."""

SCORING_PATH = "/v1/assess"
CLIENT_CLOSED = 499  # nginx's "client closed request": logged, never seen by the client

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
    workers: int = field(default_factory=usable_cores)  # processes; 0: a thread of the server
    max_queue: int = 32
    retry_after_s: int = 2
    timeout: float = 30.0  # seconds a request may wait + be scored

    def __post_init__(self) -> None:
        if self.workers < 0 or self.max_queue < 0 or self.timeout <= 0:
            raise ValueError("workers and max_queue must be >= 0 and timeout > 0")


class Saturated(Exception):
    """Every worker is busy and the waiting room is full."""


class ScoringTimeout(Exception):
    """Waiting plus scoring took longer than the configured timeout (-> 504)."""


def _error(status: int, err: Exception, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(err), status_code=status, headers=headers)


class Admission:
    """ASGI middleware: ``503`` + ``Retry-After`` when ``capacity`` scoring requests are in the
    server (uploading, waiting or scored), decided from the scope: the body is never read."""

    def __init__(
        self, app: Callable[..., Awaitable[None]], dispatcher: Dispatcher, config: ServerConfig
    ) -> None:
        self.app = app
        self.dispatcher = dispatcher
        self.capacity = dispatcher.backend.size + config.max_queue
        self.retry_after = str(config.retry_after_s)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] != SCORING_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        d = self.dispatcher
        if d.admitted >= self.capacity:
            d.stats.rejected += 1
            err = Saturated(f"server busy ({d.running} scoring, {d.waiting} waiting); retry later")
            headers = {"Retry-After": self.retry_after, "Connection": "close"}
            await _error(503, err, headers)(scope, receive, send)
            return
        d.admitted += 1
        try:
            await self.app(scope, receive, send)
        finally:
            d.admitted -= 1


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


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read: only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def score_request(
    dispatcher: Dispatcher, job: Job, request: Request, timeout: float
) -> Reply | None:
    """The job's :class:`Reply`; raises :class:`ScoringTimeout`, or returns ``None`` when the
    client went away (its job is cancelled if it had not started, else its result dropped)."""
    scoring = asyncio.create_task(dispatcher.run(job))
    gone = asyncio.create_task(_client_gone(request))
    try:
        done, _ = await asyncio.wait(
            {scoring, gone}, timeout=timeout, return_when="FIRST_COMPLETED"
        )
    finally:  # also when this handler is cancelled: no task outlives its request
        gone.cancel()
        scoring.cancel()  # a no-op once it has finished
    if scoring in done:
        return scoring.result()
    with contextlib.suppress(asyncio.CancelledError):
        await scoring
    if gone in done:
        return None
    dispatcher.stats.timed_out += 1
    raise ScoringTimeout(f"scoring did not finish within the {timeout:g} s limit; retry later")


def _static_dir() -> str:
    return str(resources.files("pronscore.server") / "static")


def make_backend(config: ServerConfig, scorer: Scorer | None) -> Backend:
    """Worker processes unless ``workers`` is 0 or a ``scorer`` object is given (tests,
    embedding): then threads, ``max(1, workers)`` of them, sharing that scorer's head."""
    if scorer is None and config.workers > 0:
        return ProcessBackend(config.model, config.workers)
    if scorer is None:
        from pronscore.scorer import Scorer  # here: with processes, this one loads no model

        scorer = Scorer.from_pretrained(config.model)
    first = scorer
    return ThreadBackend([first, *(first.fork() for _ in range(config.workers - 1))])


def create_app(config: ServerConfig | None = None, *, scorer: Scorer | None = None) -> FastAPI:
    """The app; its workers are started (and the model loaded) before this returns."""
    config = config or ServerConfig()
    dispatcher = Dispatcher(make_backend(config, scorer))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        dispatcher.close()

    app = FastAPI(
        title="pronscore",
        version=__version__,
        summary="Pronunciation assessment of English read speech (Speechocean762 scales).",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(Admission, dispatcher=dispatcher, config=config)  # outermost: first
    app.state.dispatcher = dispatcher
    app.state.config = config
    backend = dispatcher.backend

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

    @app.get("/health", summary="liveness, load and request counters")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": backend.name,
            "mode": backend.mode,
            "workers": backend.size,
            "busy": dispatcher.running,
            "waiting": dispatcher.waiting,
            "admitted": dispatcher.admitted,
            **asdict(dispatcher.stats),
        }

    @app.get("/v1/info", summary="limits, model and example sentences (for the page)")
    async def info() -> dict[str, Any]:
        return {
            "model": backend.name,
            "limits": {
                "max_upload_bytes": config.max_upload_bytes,
                "max_duration_s": config.max_duration,
                "max_text_chars": MAX_TEXT_CHARS,
                "timeout_s": config.timeout,
            },
            "sentences": list(EXAMPLE_SENTENCES),
            "config": asdict(config),
        }

    @app.post(
        SCORING_PATH,
        summary="score one recording against its text",
        responses={
            413: {"description": "upload or audio longer than the limits"},
            422: {"description": "bad audio (corrupt, empty) or text (empty, not English)"},
            503: {"description": "all workers busy and the queue full; see Retry-After"},
            504: {"description": "waiting + scoring took longer than the server's timeout"},
        },
    )
    async def assess(
        request: Request,
        audio: Annotated[UploadFile, File(description="audio file (WAV, FLAC, OGG; any rate)")],
        text: Annotated[str, Form(description="the sentence that was read")] = "",
    ) -> Response:
        data = await audio.read()
        name = audio.filename or "upload"
        if len(data) > config.max_upload_bytes:
            mb = config.max_upload_bytes / 1024 / 1024
            return _error(413, TooLarge(f"{name}: upload is larger than the {mb:g} MB limit"))
        job = Job(data, name, text, config.max_duration)
        try:
            reply = await score_request(dispatcher, job, request, config.timeout)
        except ScoringTimeout as err:
            return _error(504, err)
        if reply is None:
            return Response(status_code=CLIENT_CLOSED)
        return JSONResponse(reply.body, status_code=reply.status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("pronscore.server") / "static" / "index.html"
        return HTMLResponse(page.read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    return app
