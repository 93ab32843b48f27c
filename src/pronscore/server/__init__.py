"""REST API and browser page over :class:`~pronscore.scorer.Scorer` (FastAPI)."""

from pronscore.server.app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
