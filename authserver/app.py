"""The Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver.config import Config
from authserver.domain.errors import DomainError
from authserver.oauth.errors import server_error, to_wire
from authserver.oauth.metadata import server_metadata
from authserver.services import Services, build_services
from authserver.web import mobile, oauth, pages

log = logging.getLogger(__name__)


def _json(status: int, body: dict[str, Any], headers: list[tuple[str, str]]) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in headers:
        if name.lower() == "www-authenticate":
            response.headers.add(name, value)
        else:
            response.headers[name] = value
    return response


def create_app(config: Config | None = None, services: Services | None = None) -> Flask:
    """Build the app: services (Redis or embedded flow store), blueprints, error handlers."""
    config = config or (services.config if services else Config.from_env())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # nothing here needs a bigger body
    app.extensions["authserver"] = services or build_services(config)
    app.config["AUTHSERVER_METADATA"] = server_metadata(config)  # validated once, at start
    if config.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.trusted_proxies, x_proto=config.trusted_proxies
        )
    for blueprint in (oauth.bp, mobile.bp, pages.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Response:
        return _json(*to_wire(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status >= 500:
            return _json(*server_error())
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
        # RFC 6749 §5.2 errors are no-store, these as well as the domain's.
        response = _json(
            status,
            {"error": code, "error_description": error.name},
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )
        if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # A 5xx never leaks internals: log the trace, answer with a generic server_error.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json(*server_error())

    return app
