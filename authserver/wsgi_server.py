"""Run the app under gunicorn, a production WSGI server, with the app factory per worker."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from authserver.config import Config


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self._config = config
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:  # older gunicorn versions lack some settings
                self.cfg.set(key, value)

    def load(self) -> Any:
        from authserver.app import create_app
        from authserver.services.passwords import dummy_hash

        dummy_hash(self._config.scrypt_p)  # the first unknown-user sign-in is not slower
        return create_app(self._config)


def run(config: Config, *, host: str, port: int, workers: int, threads: int) -> None:
    """Serve until stopped. Threads serve the status channel's long-polls concurrently."""
    _Server(
        config,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 60,
            "graceful_timeout": 10,
            "accesslog": "-",
            "errorlog": "-",
            "forwarded_allow_ips": "127.0.0.1",
            # gunicorn >= 25 opens a shared management socket by default; nobody asked for it.
            "control_socket_disable": True,
        },
    ).run()
