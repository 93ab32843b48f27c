"""One scoring job, run in a worker: upload bytes + text in, a JSON-ready :class:`Reply` out.

The same :func:`score_job` runs in a thread of the server (``--workers 0``, tests) and in a
worker process (the default). A worker process loads its own :class:`Scorer` once, in
:func:`init_worker`, with numeric libraries pinned to one thread each: the pool already uses
every core, more threads per worker only contend. This module imports nothing heavy at the
top, so the thread settings are in the environment before NumPy or LightGBM are loaded.

Errors never cross the process boundary as exceptions (custom exceptions do not always
unpickle): every outcome is a :class:`Reply` with the HTTP status the server should answer.
"""

from __future__ import annotations

import io
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pronscore.errors import ModelError, PronscoreError, TextError
from pronscore.parallel import one_thread_per_process

if TYPE_CHECKING:
    from pronscore.scorer import Scorer

log = logging.getLogger("pronscore.server")

MAX_TEXT_CHARS = 1000


class TooLarge(Exception):
    """Upload or audio over a configured limit (-> 413)."""


@dataclass(frozen=True)
class Job:
    """What a worker needs for one request (pickled to worker processes)."""

    data: bytes
    filename: str
    text: str
    max_duration: float


@dataclass(frozen=True)
class Reply:
    """HTTP status and JSON body of one job's outcome."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def error_body(err: Exception) -> dict[str, str]:
    return {"detail": str(err) or type(err).__name__, "error": type(err).__name__}


def _header_duration(data: bytes) -> float | None:
    """Duration from the header, or ``None`` when the header cannot be read (decoding reports)."""
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except Exception:  # corrupt or unknown: read_audio raises the clear AudioError later
        return None
    return info.frames / info.samplerate if info.samplerate else None


def assess_bytes(
    scorer: Scorer, data: bytes, filename: str, text: str, *, max_duration: float
) -> dict[str, Any]:
    """Blocking: limits, decoding and scoring of one upload."""
    if len(text) > MAX_TEXT_CHARS:
        raise TextError(f"text is longer than {MAX_TEXT_CHARS} characters", field="text")
    duration = _header_duration(data)
    if duration is not None and duration > max_duration:
        raise TooLarge(
            f"{filename}: audio is {duration:.1f} s long; the limit is {max_duration:g} s"
        )
    handle = io.BytesIO(data)
    handle.name = filename  # error messages name the uploaded file
    return scorer.score(handle, text, max_duration=max_duration).to_dict()


def score_job(scorer: Scorer, job: Job) -> Reply:
    """Score one job; every failure becomes a 4xx/5xx :class:`Reply`, never an exception."""
    try:
        body = assess_bytes(scorer, job.data, job.filename, job.text, max_duration=job.max_duration)
    except TooLarge as err:
        return Reply(413, error_body(err))
    except ModelError as err:
        return Reply(500, error_body(err))
    except PronscoreError as err:
        return Reply(422, error_body(err))
    except Exception:
        log.exception("unexpected error while scoring")
        return Reply(500, error_body(RuntimeError("internal error while scoring; see server log")))
    return Reply(200, body)


# --------------------------------------------------------------------- worker processes

_state: dict[str, Any] = {}
"""This worker process's scorer (or why it could not load). A process pool's initializer can
leave state only in its module; the server process never writes here."""


def init_worker(model: str) -> None:
    """Process-pool initializer: one thread per library, then load ``model`` once."""
    one_thread_per_process()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the server shuts the pool down
    from pronscore.scorer import Scorer

    try:
        _state["scorer"] = Scorer.from_pretrained(model)
    except PronscoreError as err:
        _state["error"] = str(err)


def worker_info() -> dict[str, Any]:
    """Startup probe: this worker's pid and model name, or the load error as a ModelError."""
    if "error" in _state:
        raise ModelError(_state["error"])
    return {"pid": os.getpid(), "model": _state["scorer"].name}


def run_job(job: Job) -> Reply:
    """Entry point of a job in a worker process."""
    if "error" in _state:
        return Reply(500, error_body(ModelError(_state["error"])))
    return score_job(_state["scorer"], job)
