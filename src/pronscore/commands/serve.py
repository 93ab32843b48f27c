"""REST API and browser page for scoring: ``pronscore serve [--host H] [--port P]``.

Open ``http://HOST:PORT/`` for the recording page, ``/docs`` for the OpenAPI docs.
"""

from __future__ import annotations

import argparse

from pronscore.constants import MAX_DURATION_S


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default="default", help="'default' or a trained RUN_DIR")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload accepted (MB)")
    p.add_argument(
        "--max-duration", type=float, default=MAX_DURATION_S, help="longest audio accepted (s)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="scorers in threads (pocketsphinx holds the GIL: more rarely helps)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=32,
        help="requests that may wait for a free worker; more get 503 + Retry-After",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from pronscore.server.app import ServerConfig, create_app

    config = ServerConfig(
        model=args.model,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_duration=args.max_duration,
        workers=args.workers,
        max_queue=args.max_queue,
    )
    app = create_app(config)  # loads the model now: a bad --model is one clear error line
    print(f"pronscore: serving model {args.model!r} on http://{args.host}:{args.port}/")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
