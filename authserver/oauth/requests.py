"""Reading OAuth requests strictly: form bodies, single-valued parameters, client credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from werkzeug.datastructures import Headers, MultiDict

from authserver.domain import errors


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """Who the client says it is, and how it said it (RFC 6749 §2.3)."""

    client_id: str
    client_secret: str | None


def form_params(
    content_type: str | None,
    content_length: int | None,
    form: MultiDict[str, str],
    query: MultiDict[str, str],
) -> dict[str, str]:
    """The body parameters of an OAuth endpoint, each present at most once.

    RFC 6749 §3.2 and RFC 8628 §3.1: application/x-www-form-urlencoded; §3.1 also says
    parameters MUST NOT be included more than once. An empty body (a Basic-authenticated
    client with nothing else to say) has no parameters, whatever its Content-Type.
    """
    is_form = (content_type or "").split(";")[0].strip().lower() == (
        "application/x-www-form-urlencoded"
    )
    if not is_form and content_length:
        raise errors.MalformedRequest("The body must be application/x-www-form-urlencoded.")
    for name, values in form.lists():
        if len(values) > 1:
            raise errors.MalformedRequest(f"The parameter {name!r} is repeated.")
        if has_control_characters(values[0]) or has_control_characters(name):
            raise errors.MalformedRequest(f"The parameter {name!r} has control characters.")
    # RFC 6749 §2.3.1: credentials in the URL are not allowed.
    if "client_secret" in query:
        raise errors.MalformedRequest("Client credentials must not be sent in the URL.")
    return {name: value for name, value in form.items()}


def has_control_characters(text: str) -> bool:
    """True if `text` holds C0 controls or DEL: never part of a code, id, token or name."""
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def client_credentials(headers: Headers, params: Mapping[str, str]) -> ClientCredentials:
    """The client's credentials from HTTP Basic or the body, never both (RFC 6749 §2.3)."""
    has_header = "Authorization" in headers
    try:
        basic_id, basic_secret = (
            extract_basic_authorization(headers) if has_header else (None, None)
        )
    except ValueError:  # Authlib: credentials not UTF-8, or "Basic " with nothing after it
        basic_id, basic_secret = None, None
    if basic_id is not None and (
        has_control_characters(basic_id) or has_control_characters(basic_secret or "")
    ):
        basic_id = None  # refused below, like any other unreadable header
    if has_header and not basic_id:
        raise errors.ClientAuthenticationFailed("Malformed or unsupported Authorization header.")
    if basic_id:
        if "client_secret" in params:
            raise errors.MalformedRequest("Use one client authentication method, not two.")
        if params.get("client_id", basic_id) != basic_id:
            raise errors.MalformedRequest("client_id differs from the authenticated client.")
        return ClientCredentials(basic_id, basic_secret or None)
    client_id = params.get("client_id", "")
    if not client_id:
        raise errors.ClientAuthenticationFailed("client_id is required (RFC 8628 §3.1).")
    return ClientCredentials(client_id, params.get("client_secret") or None)


def required(params: Mapping[str, str], name: str) -> str:
    """A required, non-empty parameter."""
    value = params.get(name, "")
    if not value:
        raise errors.MalformedRequest(f"The parameter {name!r} is required.")
    return value
