"""`gateway serve`: gunicorn with threads, the app built in each worker."""

from __future__ import annotations

import gc
from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.config import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from gateway import create_app

        app = create_app()
        # Everything loaded so far (some 170,000 objects: the libraries, the app) lives as
        # long as the worker. Moved out of the collector's reach, a full collection costs
        # microseconds instead of ~100 ms stalling every request thread of the worker.
        gc.freeze()
        return app


def run(settings: Settings) -> None:
    _Gunicorn({
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.web_workers,
        "worker_class": "gthread",
        "threads": settings.web_threads,
        "timeout": 120,
        "graceful_timeout": 30,
        "accesslog": None,
    }).run()
