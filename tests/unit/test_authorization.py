"""The code flow's pure rules: PKCE (RFC 7636), redirect URIs (RFC 6749 §3.1.2, RFC 9700 §2.1),
prompt and max_age (OIDC Core §3.1.2.1), and adding a response to a redirect URI."""

from __future__ import annotations

import pytest

from authserver.domain import errors
from authserver.domain.authorization import (
    Prompt,
    is_registered,
    parse_max_age,
    parse_prompt,
    registration_problem,
    s256,
    valid_challenge,
    verifier_matches,
    with_params,
)

VERIFIER = "a" * 43


def test_an_s256_challenge_is_43_characters_of_base64url_without_padding() -> None:
    challenge = s256(VERIFIER)
    assert len(challenge) == 43 and "=" not in challenge and valid_challenge(challenge)
    assert s256(VERIFIER) != s256(VERIFIER + "b")


@pytest.mark.parametrize(
    ("verifier", "matches"),
    [
        (VERIFIER, True),
        ("a" * 42, False),  # RFC 7636 §4.1: at least 43 characters
        ("a" * 129, False),  # at most 128
        ("a" * 42 + "+", False),  # unreserved characters only
        ("a" * 42 + "~", False),  # well-formed, but another verifier
    ],
)
def test_a_verifier_matches_only_its_own_challenge(verifier: str, matches: bool) -> None:
    assert verifier_matches(verifier, s256(VERIFIER)) is matches


def test_the_challenge_itself_is_not_its_verifier() -> None:
    challenge = s256(VERIFIER)
    assert not verifier_matches(challenge, challenge)


@pytest.mark.parametrize(
    "uri",
    [
        "https://site.example/cb",
        "https://site.example:8443/cb?tenant=a",
        "http://localhost:5000/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:9000/cb",
    ],
)
def test_registrable_redirect_uris(uri: str) -> None:
    assert registration_problem(uri) is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://site.example/cb",
        "https://site.example/cb#x",
        "https://site.example/cb#",
        "https://*.site.example/cb",
        "https://user@site.example/cb",
        "custom-scheme://cb",
        "/relative/cb",
        "https:///cb",
        "https://site.example/c b",
        "https://site.example/" + "x" * 500,
    ],
)
def test_unregistrable_redirect_uris(uri: str) -> None:
    assert registration_problem(uri) is not None


def test_matching_is_exact() -> None:
    registered = ("https://site.example/cb",)
    assert is_registered("https://site.example/cb", registered)
    for near in (
        "https://site.example/cb/",
        "https://site.example/cb?x=1",
        "https://SITE.example/cb",
    ):
        assert not is_registered(near, registered)


def test_response_parameters_keep_the_redirect_uris_own_query() -> None:
    url = with_params("https://site.example/cb?tenant=a", {"code": "c d", "state": None})
    assert url == "https://site.example/cb?tenant=a&code=c+d"


def test_prompt_and_max_age() -> None:
    assert parse_prompt(None) == frozenset()
    assert parse_prompt("login consent") == {Prompt.LOGIN, Prompt.CONSENT}
    for bad in ("none login", "sometimes"):
        with pytest.raises(errors.MalformedRequest):
            parse_prompt(bad)
    assert parse_max_age("0") == 0 and parse_max_age(None) is None
    for bad in ("-1", "1.5", "soon", "9" * 11):
        with pytest.raises(errors.MalformedRequest):
            parse_max_age(bad)
