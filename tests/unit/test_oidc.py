"""OpenID Connect's rules, pure: what each scope releases and yields, and amr/acr of sign-ins."""

from __future__ import annotations

import pytest

from authserver.domain.models import User
from authserver.domain.oidc import (
    WEB_PLATFORM,
    AuthContext,
    AuthMethod,
    approval_authentication,
    claims_for,
    context_of,
    gets_refresh_token,
    wants_id_token,
)

ALICE = User("u-1", "alice", "Alice Liddell", "hash", email="a@example.com", email_verified=True)
BOB = User("u-2", "bob", "Bob", "hash")


@pytest.mark.parametrize(
    ("scope", "id_token", "refresh_token"),
    [
        ("openid profile email offline_access", True, True),
        ("openid profile", True, False),  # OIDC Core §11: offline_access asks for one
        ("openid", True, False),
        ("profile email", False, True),  # plain OAuth: as it always was
        ("offline_access", False, True),
        ("", False, True),
    ],
)
def test_what_a_scope_yields(scope: str, id_token: bool, refresh_token: bool) -> None:
    assert wants_id_token(scope) is id_token
    assert gets_refresh_token(scope) is refresh_token


def test_claims_follow_the_scope() -> None:
    assert claims_for(ALICE, "openid") == {"sub": "u-1"}
    assert claims_for(ALICE, "openid profile") == {
        "sub": "u-1",
        "name": "Alice Liddell",
        "preferred_username": "alice",
    }
    assert claims_for(ALICE, "email") == {
        "sub": "u-1",
        "email": "a@example.com",
        "email_verified": True,
    }
    # No email, no email claims: omitted, never null (OIDC Core §5.3.2).
    assert claims_for(BOB, "openid profile email") == {
        "sub": "u-2",
        "name": "Bob",
        "preferred_username": "bob",
    }


def test_how_an_approval_authenticated() -> None:
    phone = approval_authentication("android", approved_at=200.0, signed_in_at=100.0)
    assert phone.time == 200.0  # the approval itself
    assert phone.methods == (AuthMethod.MULTIPLE_CHANNEL, AuthMethod.USER_PRESENCE)
    assert phone.context is AuthContext.PHONE
    web = approval_authentication(WEB_PLATFORM, approved_at=200.0, signed_in_at=100.0)
    assert web.time == 100.0  # the password that signed the browser in
    assert web.methods == (AuthMethod.PASSWORD,) and web.context is AuthContext.PASSWORD
    assert context_of(("mca", "user")) == "phone" and context_of(("pwd",)) == "password"
    assert context_of(()) is None and context_of(("otp",)) is None
