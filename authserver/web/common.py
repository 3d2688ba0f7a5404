"""What every blueprint needs: the services of this app, JSON responses, checked input."""

from __future__ import annotations

import logging
from typing import Any, cast

from flask import Response, current_app, jsonify, request

from authserver.bootstrap import Services
from authserver.domain import errors
from authserver.domain.text import has_lone_surrogate, plain_text
from authserver.logs import route_of
from authserver.metrics import count_dependency_failure, count_error
from authserver.oauth.errors import to_wire
from authserver.oauth.requests import has_control_characters
from authserver.storage.failures import describe, is_unavailable

log = logging.getLogger(__name__)


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


# The answers a PC gets on most token polls (RFC 8628 §3.5): the same bytes every time, so they
# are rendered once per process instead of once per poll.
_FIXED_ANSWERS = (errors.AuthorizationPending, errors.SlowDown)
_rendered: dict[type[errors.DomainError], tuple[int, bytes, list[tuple[str, str]]]] = {}


def error_response(error: errors.DomainError) -> Response:
    """The wire answer of a domain error (oauth/errors.py's table), as a JSON response."""
    kind = type(error)
    count_error(kind.__name__)
    if kind not in _FIXED_ANSWERS or error.description != kind.description:
        return json_response(*to_wire(error))
    rendered = _rendered.get(kind)
    if rendered is None:
        first = json_response(*to_wire(error))
        rendered = _rendered[kind] = (
            first.status_code,
            first.get_data(),
            [(k, v) for k, v in first.headers.items() if k.lower() != "content-length"],
        )
    status, body, headers = rendered
    return Response(body, status, headers)


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
    if has_lone_surrogate(value):
        raise errors.MalformedRequest(f"{name!r} is not valid Unicode.")
    return value


def text_arg(name: str) -> str | None:
    """A query-string value checked by plain_text, or None when absent or empty."""
    value = request.args.get(name)
    if value is not None and not plain_text(value):
        raise errors.MalformedRequest(f"{name!r} is invalid.")
    return value or None


def int_arg(name: str, default: int, maximum: int) -> int:
    """A non-negative integer query value (ASCII digits only), capped at `maximum`."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise errors.MalformedRequest(f"{name!r} must be a non-negative integer.")
    return min(int(raw), maximum)


def path_ids_are_plain() -> bool:
    """Whether every URL path parameter of this request passes plain_text (else: a 404)."""
    return all(plain_text(str(v)) for v in (request.view_args or {}).values())


def client_ip() -> str:
    """The caller's IP (ProxyFix has applied AUTHSERVER_TRUSTED_PROXIES)."""
    return request.remote_addr or "unknown"


def as_unavailable(error: BaseException) -> errors.TemporarilyUnavailable | None:
    """The 503 that `error` stands for, or None if it is a real server error (a 500).

    A TemporarilyUnavailable is its own answer; an infrastructure exception that means a
    dependency is down (storage/failures.py decides) becomes one, logged as one warning line
    with its class: an outage must not fill the log with stack traces.
    """
    if isinstance(error, errors.TemporarilyUnavailable):
        return error
    if not is_unavailable(error):
        return None
    count_dependency_failure(type(error).__module__.split(".")[0])
    log.warning(
        "%s %s: a dependency is unavailable, answered 503 (%s)",
        request.method,
        route_of(request),  # the template: user codes travel in paths
        describe(error),
    )
    return errors.TemporarilyUnavailable()


def dpop_jkt(*, access_token: str | None = None, resource: bool = False) -> str | None:
    """The key thumbprint of the request's DPoP proof (RFC 9449 §4.3), checked against this
    request's method and URI (the issuer's, not the Host header's); None if it sent none."""
    proofs = request.headers.getlist("DPoP")
    if not proofs:
        return None
    if len(proofs) > 1:
        raise errors.InvalidDpopProof("Send one DPoP header.", resource=resource)  # §4.3 step 1
    proof = services().dpop.check(
        proofs[0],
        method=request.method,
        url=services().config.issuer + request.path,
        access_token=access_token,
        resource=resource,
    )
    return proof.jkt


def with_dpop_nonce(response: Response) -> Response:
    """RFC 9449 §8.2: hand out the next nonce with every answer, when nonces are required."""
    nonce = services().dpop.nonce()
    if nonce is not None:
        response.headers["DPoP-Nonce"] = nonce
    return response
