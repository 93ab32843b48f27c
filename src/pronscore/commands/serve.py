"""REST API and browser page for scoring: ``pronscore serve [--host H] [--port P] [--workers N]``.

Open ``http://HOST:PORT/`` for the recording page, ``/docs`` for the OpenAPI docs. Scoring runs
in ``--workers`` processes (default: one per usable core), each loading ``--model`` once.
"""

from __future__ import annotations

import argparse

from pronscore.commands import encoder
from pronscore.constants import MAX_DURATION_S
from pronscore.errors import PronscoreError
from pronscore.parallel import usable_cores


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default="default", help="'default', 'whisper' or a trained RUN_DIR")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload accepted (MB)")
    p.add_argument(
        "--max-duration", type=float, default=MAX_DURATION_S, help="longest audio accepted (s)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="scoring processes, each loading the model once (default: usable cores, "
        f"here {usable_cores()}); 0 scores in a thread of the server process",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=32,
        help="requests that may wait for a free worker; more get 503 + Retry-After "
        "before their upload is read",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds a request may wait and be scored, else 504 (default: 30)",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level")
    encoder.add_argument(p)


def run(args: argparse.Namespace) -> int:
    encoder.apply(args)
    import uvicorn

    from pronscore.server.app import ServerConfig, create_app

    if (args.workers or 0) < 0 or args.max_queue < 0 or args.timeout <= 0:
        raise PronscoreError("--workers and --max-queue must be >= 0, --timeout > 0")
    config = ServerConfig(
        model=args.model,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_duration=args.max_duration,
        workers=usable_cores() if args.workers is None else args.workers,
        max_queue=args.max_queue,
        timeout=args.timeout,
    )
    app = create_app(config)  # starts the workers now: a bad --model is one clear error line
    mode = f"{config.workers} worker processes" if config.workers else "in-process"
    print(f"pronscore: serving model {args.model!r} ({mode}) on http://{args.host}:{args.port}/")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
