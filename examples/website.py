"""A website that adds "Sign in with a QR scan": a few lines of Flask and Authlib's OIDC client.

The server does the rest (OpenID Connect's authorization code flow with PKCE; its sign-in page
shows a QR code that the user scans and approves in the phone app). Register the website once:

    authserver clients create --name "My website" --grant authorization_code \\
        --redirect-uri http://localhost:5000/callback --post-logout-redirect-uri http://localhost:5000/

then run it with the printed client_id:

    QRLOGIN_ISSUER=http://127.0.0.1:8000 QRLOGIN_CLIENT_ID=... python examples/website.py

(QRLOGIN_CLIENT_SECRET too if the client was created with --confidential.)
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Flask, redirect, request, session, url_for
from markupsafe import escape


def create_app(issuer: str, client_id: str, client_secret: str | None = None) -> Flask:
    """The website: / (who is signed in), /login, /callback, /logout."""
    app = Flask(__name__)
    app.secret_key = os.environ.get("WEBSITE_SECRET_KEY") or secrets.token_hex(32)
    oauth = OAuth(app)
    oauth.register(
        "qrlogin",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid profile email",
            "code_challenge_method": "S256",  # PKCE; the server requires it of public clients
            "token_endpoint_auth_method": "client_secret_basic" if client_secret else "none",
        },
    )

    @app.get("/")
    def home() -> str:
        user = session.get("user")
        if user is None:
            return page('<a id="sign-in" href="/login">Sign in with a QR scan</a>')
        return page(
            f'<p id="hello">Hello, {escape(user.get("name", user["sub"]))}</p>'
            '<a id="sign-out" href="/logout">Sign out</a>'
        )

    @app.get("/login")
    def login() -> Any:
        # ?prompt=none: sign in silently if the browser is signed in to the server already.
        prompt = {"prompt": "none"} if request.args.get("prompt") == "none" else {}
        return oauth.qrlogin.authorize_redirect(url_for("callback", _external=True), **prompt)

    @app.get("/callback")
    def callback() -> Any:
        try:  # checks state, iss, exchanges the code with its PKCE verifier, checks the ID token
            token = oauth.qrlogin.authorize_access_token()
        except OAuthError as error:  # access_denied, login_required, ...
            return page(f'<p id="error">{escape(error.error)}</p><a href="/login">Try again</a>')
        session["user"] = token["userinfo"]
        session["id_token"] = token["id_token"]
        return redirect(url_for("home"))

    @app.get("/logout")
    def logout() -> Any:
        id_token = session.pop("id_token", None)
        session.clear()
        end_session = oauth.qrlogin.load_server_metadata()["end_session_endpoint"]
        back = url_for("home", _external=True)
        return redirect(
            f"{end_session}?"
            + urlencode(
                {
                    "client_id": client_id,
                    "id_token_hint": id_token or "",
                    "post_logout_redirect_uri": back,
                }
            )
        )

    return app


def page(body: str) -> str:
    return f'<!doctype html><title>Example website</title><link rel="icon" href="data:,">{body}'


if __name__ == "__main__":
    create_app(
        os.environ.get("QRLOGIN_ISSUER", "http://127.0.0.1:8000"),
        os.environ["QRLOGIN_CLIENT_ID"],
        os.environ.get("QRLOGIN_CLIENT_SECRET"),
    ).run(host="localhost", port=int(os.environ.get("PORT", "5000")))
