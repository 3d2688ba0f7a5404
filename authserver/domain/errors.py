"""Domain errors. The web layer maps each one to a wire error in one table (oauth/errors.py)."""

from __future__ import annotations

from authserver.domain.text import N_


class DomainError(Exception):
    """Base of every error the domain and services raise on purpose."""

    description = N_("The request could not be completed.")

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)
        self.description = description or self.description


# --- Request shape and clients ------------------------------------------------------------
class MalformedRequest(DomainError):
    description = N_("The request is missing a parameter or has an invalid one.")


class ClientAuthenticationFailed(DomainError):
    # Always a 401 with a Basic challenge (RFC 6749 §5.2 allows it for every method), so how
    # the client authenticated does not change the answer.
    description = N_("Client authentication failed.")


class InvalidScope(DomainError):
    description = N_("The requested scope is unknown or not allowed for this client.")


class UnsupportedGrantType(DomainError):
    description = N_("This grant type is not supported.")


# --- The authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6) --------------------
class UnsupportedResponseType(DomainError):
    description = N_("Only response_type=code is supported.")


class LoginRequired(DomainError):
    description = N_("The user is not signed in here (prompt=none).")


# --- Token endpoint outcomes (RFC 8628 §3.5, RFC 6749 §5.2) --------------------------------
class AuthorizationPending(DomainError):
    description = N_("The user has not yet approved this request.")


class SlowDown(DomainError):
    description = N_("Polling too fast: increase the interval by 5 seconds.")


class AccessDenied(DomainError):
    description = N_("The user declined the request.")


class FlowExpired(DomainError):
    description = N_("The device code has expired.")


class InvalidGrant(DomainError):
    description = N_("The grant is invalid, expired, revoked or was issued to another client.")


class InvalidTarget(DomainError):
    # RFC 8693 §2.2.2: the requested resource or audience is one this server cannot issue for.
    description = N_("The requested resource or audience is not this server.")


# --- Mobile app ---------------------------------------------------------------------------
class InvalidCredentials(DomainError):
    description = N_("Unknown username or wrong password.")


class InvalidDeviceToken(DomainError):
    description = N_("The device token is missing, invalid, expired or bound to another device.")


class FlowNotFound(DomainError):
    description = N_("No login request matches this code.")


class FlowAlreadyScanned(DomainError):
    description = N_("This login request was already scanned by another device.")


class FlowNotActionable(DomainError):
    description = N_("This login request can no longer be confirmed or denied.")


class InvalidConfirmToken(DomainError):
    description = N_("The confirm token is invalid, expired, used or bound to another device.")


class RateLimited(DomainError):
    description = N_("Too many attempts. Try again later.")

    def __init__(self, retry_after: int, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class Conflict(DomainError):
    description = N_("The resource already exists.")


# --- The server itself -----------------------------------------------------------------------
class TemporarilyUnavailable(DomainError):
    """A dependency (database, Redis) is down or too slow: the client should retry."""

    description = N_("A service this server depends on is unavailable. Try again shortly.")

    def __init__(self, retry_after: int = 1, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after = retry_after


# --- Resource servers (RFC 6750 §3.1) and introspection callers ----------------------------
class MissingBearerToken(DomainError):
    # RFC 6750 §3.1: a request with no credentials gets a bare challenge and no error code.
    description = N_("This resource needs 'Authorization: Bearer <access_token>'.")


class InvalidAccessToken(DomainError):
    description = N_("The access token is invalid, expired or revoked.")


class InsufficientScope(DomainError):
    description = N_("The access token does not grant the scope this resource needs.")


class UnauthorizedClient(DomainError):
    description = N_("This client is not allowed to use this endpoint or grant.")


# --- Admins ---------------------------------------------------------------------------------
class AdminAuthenticationFailed(DomainError):
    description = N_("Admin credentials are missing, invalid or expired.")


class NotFound(DomainError):
    description = N_("No such resource.")


class InvalidDpopProof(DomainError):
    """RFC 9449 §5 and §7.1: a DPoP proof is missing where a key binding needs one, or wrong.

    `resource`: raised at a protected resource (a 401 challenge) rather than the token
    endpoint or the mobile API's own checks (a 400 there, or the mobile realm's 401)."""

    description = N_("The DPoP proof is missing or invalid.")

    def __init__(self, description: str | None = None, *, resource: bool = False) -> None:
        super().__init__(description)
        self.resource = resource


class UseDpopNonce(InvalidDpopProof):
    """RFC 9449 §8: the proof must carry the nonce this server sends in `DPoP-Nonce`."""

    description = N_("Send the DPoP proof again with the nonce in the DPoP-Nonce header.")

    def __init__(self, nonce: str, *, resource: bool = False) -> None:
        super().__init__(None, resource=resource)
        self.nonce = nonce


class NumberRequired(MalformedRequest):
    """Number matching: the phone must send the number it picked before confirming."""

    description = N_("Pick the number the computer shows, and send it as 'number'.")


class NumberMismatch(DomainError):
    """Number matching: the phone picked another number than the PC shows; the flow is denied."""

    description = N_(
        "That is not the number the computer shows: the sign-in was declined. If you did "
        "not start it on a computer in front of you, someone else may have."
    )


class QrRefreshed(DomainError):
    """A rotating QR code's link is stale: the screen that asks shows a newer one."""

    description = N_(
        "This code was refreshed on the screen: scan it again. (A QR code that was sent to "
        "you or photographed stops working within a minute.)"
    )
