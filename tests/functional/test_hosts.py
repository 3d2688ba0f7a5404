"""Host headers the server does not serve are refused; redirects are relative and not cached.

Issue 8 found `Host: evil.example` on `GET /admin` answered `308 Location:
http://evil.example/admin/`, which a shared cache could keep and serve to others.
"""

from __future__ import annotations

import dataclasses

import pytest
from flask.testing import FlaskClient

from authserver import create_app
from authserver.config import Config
from tests.functional.harness import Harness

# Which Host is served does not depend on the stores: one backend is enough.
ONE_BACKEND = pytest.mark.parametrize("backend", ["embedded+sqlite"], indirect=True)


def app_for(harness: Harness, **settings: str) -> FlaskClient:
    """The same services behind an app built for another issuer or AUTHSERVER_ALLOWED_HOSTS."""
    config = Config.from_env({}, **{**dataclasses.asdict(harness.services.config), **settings})
    return create_app(services=dataclasses.replace(harness.services, config=config)).test_client()


@ONE_BACKEND
def test_a_foreign_host_gets_no_redirect_and_no_page(harness: Harness) -> None:
    http = harness.http
    refused = http.get("/admin", headers={"Host": "evil.example"})
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_request"
    assert "Location" not in refused.headers
    assert "evil" not in refused.get_data(as_text=True)

    # HTML pages say it in HTML; the API in RFC 6749 §5.2 JSON.
    for path in ("/device", "/admin/login", f"/login?client_id={harness.client_id}"):
        page = http.get(path, headers={"Host": "evil.example"})
        assert page.status_code == 400 and page.mimetype == "text/html", path
        assert "evil" not in page.get_data(as_text=True)
    for path in ("/.well-known/oauth-authorization-server", "/oauth/jwks", "/nope"):
        assert http.get(path, headers={"Host": "evil.example"}).status_code == 400, path
    started = http.post(
        "/oauth/device_authorization",
        data={"client_id": harness.client_id},
        headers={"Host": "evil.example"},
    )
    assert started.status_code == 400 and started.get_json()["error"] == "invalid_request"
    assert started.headers["Cache-Control"] == "no-store"


@ONE_BACKEND
def test_redirects_are_relative_and_not_cacheable(harness: Harness) -> None:
    moved = harness.http.get("/admin?q=x")  # the test client's Host is the issuer's
    assert moved.status_code == 308
    assert moved.headers["Location"] == "/admin/?q=x"
    assert moved.headers["Cache-Control"] == "no-store"
    home = harness.http.get("/")  # the people's start page sends to /device
    assert home.status_code in (302, 303) and home.headers["Location"] == "/device"
    assert home.headers["Cache-Control"] == "no-store"


@ONE_BACKEND
@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("localhost", True),  # the test issuer is http://localhost
        ("LOCALHOST", True),
        ("localhost:80", True),  # the default port, spelt out
        ("127.0.0.1", True),  # a loopback issuer answers to every loopback name
        ("[::1]", True),
        ("localhost:8000", False),  # another port is another server
        ("localhost.evil.example", False),
        ("evil.example", False),
        ("user@localhost", False),
        ("localhost/x", False),
        ("", False),
    ],
)
def test_the_issuers_host_and_port(harness: Harness, host: str, served: bool) -> None:
    response = harness.http.get("/oauth/jwks", headers={"Host": host})
    assert (response.status_code == 200) is served, (host, response.status_code)


@ONE_BACKEND
def test_an_https_issuer_and_allowed_hosts(harness: Harness) -> None:
    http = app_for(
        harness,
        issuer="https://login.example.com",
        allowed_hosts="auth.internal, 10.0.0.5:8443",
    )

    def served(host: str) -> bool:
        return http.get("/oauth/jwks", headers={"Host": host}).status_code == 200

    assert served("login.example.com") and served("Login.Example.COM")
    assert served("login.example.com:443")
    assert not served("login.example.com:8443")
    assert not served("localhost") and not served("127.0.0.1")  # not a loopback issuer
    assert served("auth.internal") and served("auth.internal:8000")  # no port: any port
    assert served("10.0.0.5:8443") and not served("10.0.0.5") and not served("10.0.0.5:80")
    assert not served("evil.example")


def test_allowed_hosts_are_checked_at_start_up() -> None:
    from authserver.config import ConfigError

    for bad in ("https://a.example", "a.example/path", "a b", "*.example", "a:99999", "u@a"):
        with pytest.raises(ConfigError, match="AUTHSERVER_ALLOWED_HOSTS"):
            Config.from_env({"AUTHSERVER_ALLOWED_HOSTS": bad})
    config = Config.from_env({"AUTHSERVER_ALLOWED_HOSTS": " A.example ,b.example:8443,[::1]:80"})
    assert config.allowed_host_list == ("a.example", "b.example:8443", "[::1]:80")
