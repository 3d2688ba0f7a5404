"""What every blueprint needs: the services of this app and JSON responses."""

from __future__ import annotations

from typing import Any, cast

from flask import Response, current_app, jsonify, request

from authserver.bootstrap import Services
from authserver.domain import errors
from authserver.oauth.requests import has_control_characters


def services() -> Services:
    """The services this app was built with."""
    return cast(Services, current_app.extensions["authserver"])


def json_response(
    status: int, body: dict[str, Any], headers: list[tuple[str, str]] | None = None
) -> Response:
    """A JSON response with these headers (WWW-Authenticate may repeat; others replace)."""
    response = jsonify(body)
    response.status_code = status
    for name, value in headers or []:
        if name.lower() == "www-authenticate":
            response.headers.add(name, value)
        else:
            response.headers[name] = value
    return response


def no_store(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON response that caches must not keep (RFC 6749 §5.1)."""
    return json_response(status, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])


def cacheable(body: dict[str, Any], max_age: int) -> Response:
    """A public JSON document (metadata, JWKS) that clients may cache for `max_age` s."""
    return json_response(200, body, [("Cache-Control", f"public, max-age={max_age}")])


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a clear invalid_request."""
    if not request.is_json:
        raise errors.MalformedRequest("The body must be application/json.")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON: silent=True only covers ValueError
        body = None
    if not isinstance(body, dict):
        raise errors.MalformedRequest("The body must be a JSON object.")
    return body


def string_field(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    max_len: int = 500,
    controls: bool = False,
) -> str:
    """A string member of a JSON body, checked for type and length."""
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise errors.MalformedRequest(f"{name!r} must be a non-empty string.")
    if len(value) > max_len:
        raise errors.MalformedRequest(f"{name!r} is too long.")
    if not controls and has_control_characters(value):
        raise errors.MalformedRequest(f"{name!r} has control characters.")
    return value


def client_ip() -> str:
    """The caller's IP (ProxyFix has applied AUTHSERVER_TRUSTED_PROXIES)."""
    return request.remote_addr or "unknown"
