"""Pages for people: the verification URI of RFC 8628 §3.3."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request

from authserver.domain.codes import format_user_code, normalize_user_code

bp = Blueprint("pages", __name__, template_folder="templates")


@bp.get("/")
def home() -> Response:
    return redirect("/device")  # type: ignore[return-value]


@bp.get("/device")
def device() -> Response:
    """Where verification_uri points: tells the user how to approve with the mobile app."""
    normalized = normalize_user_code(request.args.get("user_code", ""))
    html = render_template(
        "device.html", user_code=format_user_code(normalized) if normalized else None
    )
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
