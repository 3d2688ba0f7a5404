"""The server's metadata: RFC 8414 and OpenID Connect Discovery 1.0 in one document, validated
with Authlib at start-up."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from authserver.config import ASYMMETRIC_ALGORITHMS, Config
from authserver.domain.flow import DEVICE_CODE_GRANT as DEVICE_CODE_GRANT  # re-exported
from authserver.domain.models import GrantType
from authserver.domain.oidc import CLAIMS_SUPPORTED, AuthContext
from authserver.services.keys import ALGORITHM
from authserver.services.token_exchange import TOKEN_EXCHANGE_GRANT

CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]


def server_metadata(config: Config) -> dict[str, Any]:
    """The metadata document, served at both well-known locations so they always agree.

    RFC 8414 §2 admits OpenID's members (they are in the same IANA registry), and OIDC
    Discovery §3 its own, so one document is both.
    """
    issuer = config.issuer
    metadata = {
        "issuer": issuer,
        # The code flow's endpoint (OIDC Core §3.1.2), whose sign-in is the QR login.
        "authorization_endpoint": f"{issuer}/authorize",
        "end_session_endpoint": f"{issuer}/logout",  # OIDC RP-Initiated Logout 1.0 §2.1
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 §3
        "device_authorization_endpoint": f"{issuer}/oauth/device_authorization",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/userinfo",  # OIDC Core §5.3
        "jwks_uri": f"{issuer}/oauth/jwks",
        "scopes_supported": list(config.scope_list),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [g.value for g in GrantType]
        # RFC 8693: only when an identity provider is trusted (else the grant is not served).
        + ([TOKEN_EXCHANGE_GRANT] if config.trusted_issuer_list else []),
        "code_challenge_methods_supported": ["S256"],  # RFC 7636 §4.2; plain is not offered
        # RFC 9449 §5.1: the PC may bind its device code and tokens to a key of these algorithms.
        "dpop_signing_alg_values_supported": list(ASYMMETRIC_ALGORITHMS),
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        # OIDC Discovery §3: one subject identifier per user for every client.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claim_types_supported": ["normal"],
        "acr_values_supported": [context.value for context in AuthContext],
        # Request objects are not supported; the default for request_uri would be true.
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "revocation_endpoint": f"{issuer}/oauth/revoke",  # RFC 7009
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": f"{issuer}/oauth/introspect",  # RFC 7662
        # Introspection needs a secret: public clients cannot authenticate (RFC 7662 §2.1).
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        # Non-standard: the QR login status channel (long-poll), see README.
        "device_status_endpoint": f"{issuer}/oauth/device_status",
    }
    _validate(metadata)
    return metadata


class _ProviderMetadata(OpenIDProviderMetadata):  # type: ignore[misc]
    def validate_id_token_signing_alg_values_supported(self) -> None:
        # Discovery §3 asks for RS256 in this list, but Core §15.1 exempts an OP that returns
        # ID tokens only from the token endpoint (the device grant, the code flow) and signs
        # with one asymmetric algorithm: ours is ES256, the published key's. Still a list.
        values = self.get("id_token_signing_alg_values_supported")
        if not isinstance(values, list) or not values or "none" in values:
            raise ValueError('"id_token_signing_alg_values_supported" must list algorithms')


def _validate(metadata: dict[str, Any]) -> None:
    # Authlib insists on https; Config allows http only for a localhost issuer, so check that
    # case as if it were https rather than relaxing Authlib process-wide.
    issuer = metadata["issuer"]
    secure = issuer.replace("http://", "https://", 1)
    _ProviderMetadata(
        {k: v.replace(issuer, secure, 1) if isinstance(v, str) else v for k, v in metadata.items()}
    ).validate(metadata_classes=[AuthorizationServerMetadata])
