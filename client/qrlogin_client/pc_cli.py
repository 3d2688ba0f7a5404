"""qrlogin-pc: sign in on this PC by scanning a QR code with your phone.

A reference client of the QR login server, built on the `qrlogin_client.pc` library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from qrlogin_client import __version__
from qrlogin_client.files import config_home
from qrlogin_client.http import ClientError
from qrlogin_client.i18n import _, _n
from qrlogin_client.pc import (
    AccessDenied,
    DeviceAuthorization,
    DeviceLogin,
    ExpiredToken,
    NotSignedIn,
    OAuthError,
    StatusUpdate,
    Tokens,
    TokenStore,
)
from qrlogin_client.terminal_qr import STYLES, QRStyle, can_draw_blocks, render_qr, resolve_style

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_RENEWALS = 2
SECRET_ENV = "QRLOGIN_CLIENT_SECRET"

EPILOG = f"""\
exit status: 0 signed in (or the command worked), 1 denied, expired or failed, 2 usage error,
130 interrupted.

When a code expires before it is approved, `login` asks "Get a new code? [Y/n]" if standard
input is a terminal. With --yes, or when standard input is not a terminal, it fetches a new
code by itself up to --renew times (default {DEFAULT_RENEWALS}), then gives up with exit status 1.

A confidential client's secret is read from ${SECRET_ENV} (never from the command
line, where other users could see it in the process list). Tokens are saved as JSON with file
mode 600.
"""


def default_token_file() -> Path:
    return config_home() / "qrlogin-pc" / "tokens.json"


# --- output ---------------------------------------------------------------------------------
class StatusLine:
    """One live status line, rewritten in place on a terminal; plain lines otherwise."""

    def __init__(self, out: TextIO, redraw: Callable[[str], None] | None = None) -> None:
        self._out = out
        self._redraw = redraw  # a rotating QR code: draws the new link
        self._tty = out.isatty()
        self._open = False  # a TTY line is showing and has no newline yet
        self._lock = threading.Lock()

    def update(self, update: StatusUpdate) -> None:
        with self._lock:
            if update.qr_text and self._redraw is not None:
                if self._open:
                    self._out.write("\n")
                    self._open = False
                self._redraw(update.qr_text)
            if self._tty:
                self._out.write("\r\x1b[2K" + update.message)
                self._open = True
                if update.final:
                    self._out.write("\n")
                    self._open = False
            else:
                self._out.write(_("Status: {message}").format(message=update.message) + "\n")
            self._out.flush()

    def end(self) -> None:
        """Finish a line left open (e.g. when the wait ended without a final status)."""
        with self._lock:
            if self._open:
                self._out.write("\n")
                self._out.flush()
                self._open = False


def show_authorization(authorization: DeviceAuthorization, style: QRStyle, out: TextIO) -> None:
    """The QR code, then the URI and code to type (RFC 8628 §3.3), then how long it lasts."""
    resolved = resolve_style(style, out)
    where = {"uri": authorization.verification_uri, "code": authorization.user_code}
    if resolved != "none":
        out.write("\n" + _("Scan this QR code with the app on your phone:") + "\n\n")
        out.write(render_qr(authorization.qr_text, resolved, unicode=can_draw_blocks(out)))
        out.write("\n" + _("Or visit {uri} and enter code {code}").format(**where) + "\n")
    else:
        out.write("\n" + _("Visit {uri} and enter code {code}").format(**where) + "\n")
    minutes = max(round(authorization.expires_in / 60), 1)
    expiry = _n(
        "(The code expires in {minutes} minute.)",
        "(The code expires in {minutes} minutes.)",
        minutes,
    )
    out.write(expiry.format(minutes=minutes) + "\n\n")
    out.flush()


def describe_expiry(tokens: Tokens, now: float) -> str:
    if tokens.expires_at is None:
        return "no expiry given"
    left = int(tokens.expires_at - now)
    if left <= 0:
        return "expired"
    minutes, seconds = divmod(left, 60)
    return f"expires in {minutes} min {seconds} s" if minutes else f"expires in {seconds} s"


def who(me: dict[str, Any]) -> str:
    name, username = me.get("name"), me.get("username")
    if name and username:
        return f"{name} ({username})"
    return str(name or username or f"user {me.get('sub', '?')}")


def fail(message: str) -> int:
    print(f"qrlogin-pc: {message}", file=sys.stderr)
    return EXIT_FAILED


def ask_yes(prompt: str, default: bool) -> bool:
    try:
        answer = input(prompt).strip().lower()
    except EOFError:
        return False
    if not answer:
        return default
    return answer in ("y", "yes")


# --- commands -------------------------------------------------------------------------------
def cmd_login(args: argparse.Namespace) -> int:
    out: TextIO = sys.stdout
    store = TokenStore(args.token_file)
    interactive = not args.yes and sys.stdin.isatty()
    style = resolve_style(args.qr, out)

    def redraw(link: str) -> None:
        """A rotating QR code: the new link, drawn again (the old one stops working)."""
        if style != "none":
            out.write("\n" + _("Scan this QR code with the app (it changes every 30 s):") + "\n\n")
            out.write(render_qr(link, style, unicode=can_draw_blocks(out)))
            out.write("\n")

    line = StatusLine(out, redraw if args.rotating_qr else None)
    secret = os.environ.get(SECRET_ENV) or None
    with DeviceLogin(
        args.server,
        args.client_id,
        secret,
        args.scope,
        dpop=not args.bearer,
        number_matching=args.number_matching,
        rotating_qr=args.rotating_qr,
    ) as login:
        renewals = 0
        while True:
            authorization = login.start()
            # A rotating QR code is drawn from the status channel's first scan token.
            show_authorization(authorization, "none" if args.rotating_qr else args.qr, out)
            try:
                tokens = login.wait(authorization, on_status=line.update)
                break
            except ExpiredToken:
                line.end()
                if interactive:
                    if ask_yes("Get a new code? [Y/n] ", default=True):
                        continue
                    return fail("the code expired; not signed in.")
                if renewals >= args.renew:
                    return fail(f"the code expired ({renewals} new codes fetched); not signed in.")
                renewals += 1
                out.write(f"Getting a new code ({renewals} of {args.renew})...\n")
                out.flush()
            except AccessDenied:
                line.end()
                return fail("sign-in denied on the phone; not signed in.")
            finally:
                line.end()
        store.save(tokens, issuer=login.issuer, client_id=login.client_id, dpop_key=login.dpop_key)
        try:
            identity = _("Signed in as {who}.").format(who=who(login.me(tokens)))
        except ClientError as exc:
            identity = f"Signed in (the server did not say as whom: {exc})."
    out.write(
        identity + "\n" + _("Tokens saved to {path} (mode 600).").format(path=store.path) + "\n"
    )
    out.flush()
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    store = TokenStore(args.token_file)
    with store.login(os.environ.get(SECRET_ENV) or None) as login:
        tokens = store.refreshed(login, force=True)
    print(f"Refreshed: the new access token {describe_expiry(tokens, tokens.obtained_at)}.")
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace) -> int:
    store = TokenStore(args.token_file)
    saved = store.load()
    with store.login(os.environ.get(SECRET_ENV) or None) as login:
        tokens = store.refreshed(login)  # only if expired; rotation is saved at once
        me = login.me(tokens)
    if args.json:
        print(json.dumps(me, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"Signed in as {who(me)}")
    print(f"  server:       {saved.issuer}")
    print(f"  client:       {saved.client_id}")
    print(f"  scope:        {tokens.scope or me.get('scope', '')}")
    print(f"  access token: {describe_expiry(tokens, time.time())}")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    store = TokenStore(args.token_file)
    saved = store.load()
    with store.login(os.environ.get(SECRET_ENV) or None) as login:
        login.revoke(saved.tokens)
    store.delete()
    print(f"Signed out: the tokens were revoked and {store.path} deleted.")
    return EXIT_OK


# --- wiring ---------------------------------------------------------------------------------
def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qrlogin-pc",
        description="Sign in on this PC by scanning a QR code with your phone "
        "(OAuth 2.0 device authorization grant, RFC 8628).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def token_file(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--token-file",
            type=Path,
            default=default_token_file(),
            help="where the tokens are kept (default: %(default)s)",
        )

    login = commands.add_parser(
        "login",
        help="show a QR code, wait for the phone, save the tokens",
        description="Show a QR code (and a code to type), wait until it is approved on the "
        "phone, then save the tokens and say who signed in.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    login.add_argument(
        "--server",
        default=os.environ.get("QRLOGIN_SERVER"),
        required="QRLOGIN_SERVER" not in os.environ,
        help="the server's issuer URL, e.g. https://login.example.com ($QRLOGIN_SERVER)",
    )
    login.add_argument(
        "--client-id",
        default=os.environ.get("QRLOGIN_CLIENT_ID"),
        required="QRLOGIN_CLIENT_ID" not in os.environ,
        help="this app's client id ($QRLOGIN_CLIENT_ID)",
    )
    login.add_argument("--scope", help="space-separated scopes (default: the client's own)")
    login.add_argument(
        "--number-matching",
        action="store_true",
        help="ask for number matching: this terminal shows a number the phone must pick",
    )
    login.add_argument(
        "--rotating-qr",
        action="store_true",
        help="ask for a QR code that changes every 30 s (a photo of it goes stale): it is "
        "drawn again each time; the typed code stays valid",
    )
    login.add_argument(
        "--bearer",
        action="store_true",
        help="ask for bearer tokens instead of tokens bound to a DPoP key of this client "
        "(RFC 9449; the default whenever the server supports it)",
    )
    token_file(login)
    login.add_argument(
        "--qr",
        choices=STYLES,
        default="auto",
        help="how to draw the QR code: color (black on white on any theme), light-bg, "
        "dark-bg (no colours), none; auto: color on a terminal, light-bg in a file "
        "(default: %(default)s)",
    )
    login.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="never ask: fetch a new code by itself when one expires (see --renew)",
    )
    login.add_argument(
        "--renew",
        type=_non_negative,
        default=DEFAULT_RENEWALS,
        metavar="N",
        help="without a terminal to ask (or with --yes), fetch at most N new codes after the "
        "first expires, then exit 1 (default: %(default)s)",
    )
    login.set_defaults(func=cmd_login)

    refresh = commands.add_parser("refresh", help="swap the refresh token for new tokens")
    token_file(refresh)
    refresh.set_defaults(func=cmd_refresh)

    whoami = commands.add_parser(
        "whoami", help="who the saved tokens sign in as (refreshes an expired access token)"
    )
    token_file(whoami)
    whoami.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    whoami.set_defaults(func=cmd_whoami)

    logout = commands.add_parser("logout", help="revoke the tokens (RFC 7009), delete the file")
    token_file(logout)
    logout.set_defaults(func=cmd_logout)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\n" + _("Cancelled."), file=sys.stderr)
        return 130
    except NotSignedIn as exc:
        return fail(f"{exc} Sign in with: qrlogin-pc login")
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "invalid_token"):
            return fail(f"the session has ended ({exc}). Sign in again with: qrlogin-pc login")
        return fail(str(exc))
    except ClientError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
