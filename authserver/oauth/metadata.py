"""RFC 8414 authorization server metadata, validated with Authlib at start-up."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from authserver.config import Config
from authserver.domain.flow import DEVICE_CODE_GRANT


def server_metadata(config: Config) -> dict[str, Any]:
    """The metadata document; the same at both well-known locations."""
    issuer = config.issuer
    metadata = {
        "issuer": issuer,
        "device_authorization_endpoint": f"{issuer}/oauth/device_authorization",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "scopes_supported": list(config.scope_list),
        # No authorization endpoint: this server only runs the device flow.
        "response_types_supported": [],
        "grant_types_supported": [DEVICE_CODE_GRANT, "refresh_token"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint": f"{issuer}/oauth/revoke",  # RFC 7009
        "revocation_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
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


class _DeviceFlowMetadata(AuthorizationServerMetadata):  # type: ignore[misc]
    def validate_response_types_supported(self) -> None:
        # RFC 8414 §2 requires the member; with no authorization endpoint the truthful value is
        # an empty list, which Authlib would reject as missing.
        if not isinstance(self.get("response_types_supported"), list):
            raise ValueError('"response_types_supported" must be a list')


def _validate(metadata: dict[str, Any]) -> None:
    # Authlib insists on https; Config allows http only for a localhost issuer, so check that
    # case as if it were https rather than relaxing Authlib process-wide.
    issuer = metadata["issuer"]
    secure = issuer.replace("http://", "https://", 1)
    _DeviceFlowMetadata(
        {k: v.replace(issuer, secure, 1) if isinstance(v, str) else v for k, v in metadata.items()}
    ).validate()
