"""The Flask application factory."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver.bootstrap import Services, build_services
from authserver.config import AccessLog as AccessLogSetting
from authserver.config import Config
from authserver.domain.errors import DomainError
from authserver.logs import AccessLog, LoggedRequest, route_of, stdout_writer
from authserver.metrics import observe_request
from authserver.oauth.errors import http_to_wire, server_error, to_wire
from authserver.oauth.metadata import server_metadata
from authserver.web import (
    admin_api,
    admin_console,
    api,
    authorize,
    health,
    hosts,
    i18n,
    mobile,
    oauth,
    pages,
    verification,
)
from authserver.web.common import as_unavailable, error_response, json_response

log = logging.getLogger(__name__)

# Nothing here needs a bigger body; the HTTP server refuses bigger ones before they are read.
MAX_BODY_BYTES = 64 * 1024


def create_app(config: Config | None = None, services: Services | None = None) -> Flask:
    """Build the app: services (Redis or embedded flow store), blueprints, error handlers."""
    config = config or (services.config if services else Config.from_env())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["authserver"] = services or build_services(config)
    app.config["AUTHSERVER_METADATA"] = server_metadata(config)  # validated once, at start
    if config.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=config.trusted_proxies, x_proto=config.trusted_proxies
        )
    blueprints = (
        oauth.bp,
        mobile.bp,
        api.bp,
        admin_api.bp,
        admin_console.bp,
        pages.bp,
        authorize.bp,
        verification.bp,
        health.bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    hosts.install(app, config)  # before any other hook: a foreign Host gets no further
    i18n.install(app)  # the people's pages in English or Chinese (the wire stays English)

    @app.before_request
    def _started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _measured(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        observe_request(request.method, rule, response.status_code, seconds)
        return response

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = json_response(*http_to_wire(error.code or 500, error.name))
        if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # A dependency that is down is a 503 the client retries (RFC 6749 §5.2 body).
        unavailable = as_unavailable(error)
        if unavailable is not None:
            return json_response(*to_wire(unavailable))
        # A 5xx never leaks internals: log the trace, answer with a generic server_error.
        # The route's template, never the path: user codes travel in paths (/qr/<code>.<fmt>).
        log.exception("unhandled error on %s %s", request.method, route_of(request))
        return json_response(*server_error())

    if config.access_log is AccessLogSetting.JSON:
        app.request_class = LoggedRequest  # the access log reads the matched route from it
        # Outermost, so its duration covers ProxyFix too; ProxyFix sets REMOTE_ADDR in the
        # shared environ, so the line carries the client's address, not the proxy's.
        app.wsgi_app = AccessLog(app.wsgi_app, stdout_writer())  # type: ignore[method-assign]
    return app
