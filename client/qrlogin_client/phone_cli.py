"""qrlogin-phone: a mobile-app simulator for the QR login server.

Sign the "phone" in once (a device id is generated on first use and kept in the state file),
then scan a QR code image, its text, or a typed user code, read the approval screen, and
approve or deny.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from qrlogin_client import __version__
from qrlogin_client.dpop import DpopKey
from qrlogin_client.http import ClientError
from qrlogin_client.i18n import _
from qrlogin_client.phone import (
    SUBJECT_TOKEN_TYPES,
    MobileApiError,
    MobileApp,
    PhoneError,
    PhoneState,
    PhoneStateStore,
    decode_qr_image,
    default_state_file,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """\
exit status: 0 done (for `scan`: the approval or the refusal was delivered), 1 failed (wrong
password, unreadable image, code unknown or already used, server unreachable), 2 usage error,
130 interrupted.

The state file (mode 600) keeps the device id, generated once, and the device token.
"""


# The answers that approve: English in every language, and the catalogue's (e.g. 是, 确认).
ENGLISH_YES = "y|yes"


def approves(answer: str) -> bool:
    """Whether the answer to "Approve?" is a yes, in English or the user's language."""
    accepted = {*ENGLISH_YES.split("|"), *_(ENGLISH_YES).split("|")}
    return answer.strip().lower() in {word.strip().lower() for word in accepted}


class UsageError(Exception):
    """A command line that cannot work (exit status 2)."""


def fail(message: str) -> int:
    print(f"qrlogin-phone: {message}", file=sys.stderr)
    return EXIT_FAILED


def _signed_in(store: PhoneStateStore) -> tuple[PhoneState, MobileApp]:
    state = store.load()
    if state is None or not state.device_token or not state.server:
        raise PhoneError(
            _("Not signed in (no device token in {path}): run signin first.").format(
                path=store.path
            )
        )
    # A state from before keys were kept signed in without one: it stays a bearer phone.
    key = DpopKey.from_pem(state.dpop_key) if state.dpop_key else None
    return state, MobileApp(state.server, state.device_id, state.device_token, key=key)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input has no password line.")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: use --password-stdin.")
    return getpass.getpass("Password: ")


def _read_subject_token() -> str:
    token = sys.stdin.readline().strip()
    if not token:
        raise UsageError("--subject-token-stdin: standard input has no token line.")
    return token


def cmd_signin(args: argparse.Namespace) -> int:
    store = PhoneStateStore(args.state)
    exchange = args.subject_token_stdin
    if exchange == bool(args.username):
        raise UsageError("give --username (password) or --subject-token-stdin (token exchange)")
    if exchange and not args.client_id:
        raise UsageError("--subject-token-stdin needs --client-id (the server's mobile app client)")
    secret = _read_subject_token() if exchange else _read_password(args.password_stdin)
    state = store.load_or_create(args.device_name, args.platform or "android")
    if args.device_name:
        state.device_name = args.device_name
    if args.platform:
        state.platform = args.platform
    app = MobileApp(
        args.server, state.device_id, device_cookie=state.device_cookie, key=state.key()
    )
    if exchange:
        state.device_token = app.exchange_token(
            args.client_id, secret, args.subject_token_type, state.device_name, state.platform
        )
        state.username = None  # the identity provider's user: named in the user's language
    else:
        state.device_token = app.sign_in(args.username, secret, state.device_name, state.platform)
        state.device_cookie = app.device_cookie
        state.username = args.username
    state.server = app.server
    store.save(state)
    print(_("Signed in as {who} on {server}.").format(who=_who(state), server=app.server))
    print(
        _("This phone: {name} ({platform}), device id {device_id}.").format(
            name=state.device_name, platform=state.platform, device_id=state.device_id
        )
    )
    print(_("State saved to {path} (mode 600).").format(path=store.path))
    return EXIT_OK


def _who(state: PhoneState) -> str:
    """Whom the phone is signed in as."""
    return state.username or _("your identity provider's user")


def cmd_scan(args: argparse.Namespace) -> int:
    store = PhoneStateStore(args.state)
    state, app = _signed_in(store)
    if args.image is not None:
        text = decode_qr_image(args.image)
        print(_("QR code read from {image}: {text}").format(image=args.image, text=text))
        screen = app.scan(qr=text)
    elif args.text is not None:
        screen = app.scan(qr=args.text)
    else:
        screen = app.scan(user_code=args.code)
    print()
    print(screen.describe())
    prompt = _("Approve? [y/N] ")
    if args.approve:
        approve = True
        print(f"{prompt}y (--approve)")
    elif args.deny:
        approve = False
        print(f"{prompt}n (--deny)")
    else:
        try:
            answer = input(prompt)
        except EOFError:
            answer = ""
        if not sys.stdin.isatty():
            print(answer.strip())  # a terminal echoed the answer; a pipe does not
        approve = approves(answer)
    number = args.number
    if approve and screen.number_choices and number is None:
        try:
            typed = input(_("Which number does the PC show? "))
        except EOFError:
            typed = ""
        if not sys.stdin.isatty():
            print(typed.strip())
        number = int(typed) if typed.strip().isdigit() else None
        if number is None:
            print(_("No number picked: nothing was approved."))
            return EXIT_FAILED
    if approve and screen.number_choices and number not in screen.number_choices:
        # The server denies a wrong pick; a slip of the keyboard should not: send nothing,
        # the sign-in stays open and a new scan shows the same choices.
        choices = ", ".join(str(n) for n in screen.number_choices)
        print(
            _("{number} is not one of the choices ({choices}): nothing was approved.").format(
                number=number, choices=choices
            )
        )
        return EXIT_FAILED
    if approve:
        status = app.confirm(screen, number)
        print(
            _("Approved ({status}): the PC is signing in as {who}.").format(
                status=status, who=_who(state)
            )
        )
    else:
        status = app.deny(screen)
        print(_("Declined ({status}): the PC was told no.").format(status=status))
    return EXIT_OK


def cmd_signout(args: argparse.Namespace) -> int:
    store = PhoneStateStore(args.state)
    state, app = _signed_in(store)
    try:
        app.sign_out()
    except MobileApiError as exc:
        if exc.status != 401:  # 401: the server already forgot this token: signed out anyway
            raise
    state.device_token = None
    store.save(state)  # the device id stays: it is this phone's for good
    print(
        _("Signed out; the device id {device_id} is kept in {path}.").format(
            device_id=state.device_id, path=store.path
        )
    )
    return EXIT_OK


def cmd_logins(args: argparse.Namespace) -> int:
    """List the user's signed-in computers; end or report one."""
    app = _signed_in(PhoneStateStore(args.state))[1]
    if args.end or args.report:
        app.end_login(args.end or args.report, report=bool(args.report))
        print(_("Reported and signed out.") if args.report else _("Signed out."))
        return EXIT_OK
    found = app.logins()
    if not found:
        print(_("No computer is signed in to your account."))
    line = _(
        "{id}  {client}  from {ip} ({place}), says {device_says}; since {signed_in_at}, "
        "approved on {phone}; last refreshed {refreshed}"
    )
    for login in found:
        device, by = login.get("requesting_device") or {}, login.get("approved_by") or {}
        phone = _("this phone") if by.get("this_phone") else by.get("name") or _("another phone")
        print(
            line.format(
                id=login.get("id"),
                client=(login.get("client") or {}).get("name"),
                ip=device.get("ip"),
                place=device.get("place"),
                device_says=device.get("device_says"),
                signed_in_at=login.get("signed_in_at"),
                phone=phone,
                refreshed=login.get("last_refreshed_at") or _("never"),
            )
        )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    store = PhoneStateStore(args.state)
    state = store.load()
    if state is None:
        print(_("No phone yet ({path} does not exist): run signin.").format(path=store.path))
        return EXIT_FAILED
    print(
        _("{name} ({platform}), device id {device_id}").format(
            name=state.device_name, platform=state.platform, device_id=state.device_id
        )
    )
    signed_in = _("signed in as {who} on {server}").format(who=_who(state), server=state.server)
    print(signed_in if state.device_token else _("not signed in"))
    return EXIT_OK if state.device_token else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state",
        type=Path,
        default=default_state_file(),
        help="the phone's state file (default: %(default)s)",
    )
    parser = argparse.ArgumentParser(
        prog="qrlogin-phone",
        description="A mobile-app simulator: approve QR sign-ins from the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    signin = commands.add_parser("signin", parents=[common], help="sign this phone in")
    signin.add_argument("--server", required=True, help="the server's URL")
    signin.add_argument("--username", help="sign in with this username and its password")
    signin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (else it is asked for)",
    )
    signin.add_argument(
        "--subject-token-stdin",
        action="store_true",
        help="instead, exchange a token of your own identity provider (RFC 8693), read from "
        "the first line of standard input",
    )
    signin.add_argument("--client-id", help="with --subject-token-stdin: the mobile app client")
    signin.add_argument(
        "--subject-token-type",
        choices=SUBJECT_TOKEN_TYPES,
        default="access_token",
        help="with --subject-token-stdin: what the token is (default: %(default)s)",
    )
    signin.add_argument("--device-name", help="this phone's name (default: from the host name)")
    signin.add_argument("--platform", help="ios, android, ... (default: android)")
    signin.set_defaults(func=cmd_signin)

    scan = commands.add_parser(
        "scan",
        parents=[common],
        help="scan a QR code (image or text) or type a user code, then approve or deny",
    )
    what = scan.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", type=Path, help="a picture of the QR code (PNG, JPEG, ...)")
    what.add_argument("--text", help="the QR code's text (verification_uri_complete)")
    what.add_argument("--code", help="the user code shown on the PC, e.g. WDJB-MJHT")
    decision = scan.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve without asking")
    decision.add_argument("--deny", action="store_true", help="decline without asking")
    scan.add_argument(
        "--number",
        type=int,
        default=None,
        help="number matching: the number the PC shows (asked for when needed, if not given)",
    )
    scan.set_defaults(func=cmd_scan)

    logins = commands.add_parser(
        "logins",
        parents=[common],
        help="list the computers signed in to your account; end or report one",
    )
    which = logins.add_mutually_exclusive_group()
    which.add_argument("--end", metavar="ID", help="sign that computer out")
    which.add_argument("--report", metavar="ID", help="this wasn't me: sign it out and report it")
    logins.set_defaults(func=cmd_logins)

    signout = commands.add_parser("signout", parents=[common], help="sign this phone out")
    signout.set_defaults(func=cmd_signout)

    status = commands.add_parser("status", parents=[common], help="show the phone's state")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        parser.error(str(exc))  # exits with status 2
    except KeyboardInterrupt:
        print("\n" + _("Cancelled."), file=sys.stderr)
        return 130
    except ClientError as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
