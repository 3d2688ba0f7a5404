"""`authserver ...`: database, server, clients and users; JSON on stdout for scripts."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, NoReturn

import redis
from alembic.util import CommandError as AlembicError
from cryptography.fernet import Fernet
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.exc import SQLAlchemyError

from authserver.bootstrap import Services, build_services, key_cipher, wall_clock
from authserver.config import Config, ConfigError, is_private_literal
from authserver.domain.errors import DomainError
from authserver.domain.errors import NotFound as DomainNotFound
from authserver.domain.models import (
    SYSTEM,
    Admin,
    Client,
    ClientKind,
    GrantType,
    User,
)
from authserver.http_server import ServerOptions, check_threads, granian_options, run
from authserver.metrics import MULTIPROC_ENV
from authserver.services.keys import KEY_ACTIVATION_DELAY
from authserver.services.logos import MAX_LOGO_BYTES
from authserver.storage.key_encryption import KeyDecryptionError
from authserver.storage.sql.database import Database
from authserver.storage.sql.keys import SqlKeys

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"  # printed by `authserver demo`; for trying it locally only
DEMO_CLIENT_NAME = "Demo PC client"
DEMO_ADMIN = "admin"
LAN_WARNING = """
WARNING: plain http on your local network ({address}). Anyone on this Wi-Fi can read the
passwords and tokens that cross it. This is for trying the QR login with a real phone only:
for anything else serve https (README, "A real phone in five minutes").

"""


def _print(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _services() -> Services:
    """The services on a database whose schema is the code's (else: run `db upgrade` first)."""
    svc = build_services(Config.from_env())
    try:
        _check_schema(svc)
    except BaseException:
        svc.close()
        raise
    return svc


def cmd_db_upgrade(_: argparse.Namespace) -> int:
    svc = build_services(Config.from_env())
    svc.database.upgrade()
    current, head = svc.database.schema_revision()
    _print({"database": svc.database.engine.url.render_as_string(), "revision": current})
    return 0 if current == head else 1


def _grants(named: list[str] | None) -> list[str] | None:
    """The --grant values; a client that gets refresh tokens may use them (refresh_token)."""
    if not named:
        return None
    return [*named, GrantType.REFRESH_TOKEN.value]


def _client_json(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "kind": client.kind.value,
        "confidential": client.is_confidential,
        "scope": client.scope,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": [str(grant) for grant in client.grant_types],
        "number_matching": client.number_matching,
        "disabled": client.disabled_at is not None,
    }


def cmd_clients_create(args: argparse.Namespace) -> int:
    if args.resource_server and args.mobile_app:
        raise ConfigError("--resource-server and --mobile-app exclude each other")
    kind = ClientKind.DEVICE
    if args.resource_server:
        kind = ClientKind.RESOURCE_SERVER
    elif args.mobile_app:
        kind = ClientKind.MOBILE_APP
    client, secret = _services().clients.create(
        args.name,
        confidential=args.confidential,
        scope=args.scope,
        kind=kind,
        redirect_uris=args.redirect_uri or (),
        post_logout_redirect_uris=args.post_logout_redirect_uri or (),
        grant_types=_grants(args.grant) or (),
        number_matching=bool(args.number_matching),
    )
    payload = {"client_id": client.client_id}
    if client.is_confidential:
        payload["client_secret"] = secret  # shown once; only its SHA-256 is stored
    _print(payload)
    return 0


def cmd_clients_update(args: argparse.Namespace) -> int:
    """Change what is given; a repeated option replaces that whole list."""
    client = _services().clients.update(
        args.client_id,
        name=args.name,
        scope=args.scope,
        redirect_uris=args.redirect_uri,
        post_logout_redirect_uris=args.post_logout_redirect_uri,
        grant_types=_grants(args.grant),
        number_matching=args.number_matching,
    )
    _print(_client_json(client))
    return 0


def cmd_clients_list(_: argparse.Namespace) -> int:
    _print({"clients": [_client_json(client) for client in _services().clients.all()]})
    return 0


def cmd_clients_show(args: argparse.Namespace) -> int:
    _print(_client_json(_services().clients.existing(args.client_id)))
    return 0


def cmd_clients_enable(args: argparse.Namespace) -> int:
    """Disable (its sessions revoked, no new logins) or enable again; audited as the system."""
    client = _services().administration.set_client_enabled(
        args.client_id, args.clients == "enable", SYSTEM, ""
    )
    _print(_client_json(client))
    return 0


def cmd_clients_delete(args: argparse.Namespace) -> int:
    """Delete a client: its sessions revoked, no new flows, its id never reused."""
    client = _services().administration.delete_client(args.client_id, SYSTEM, "")
    _print({"client_id": client.client_id, "deleted": True})
    return 0


def cmd_clients_set_logo(args: argparse.Namespace) -> int:
    """The logo the login and approval pages show next to the client's name."""
    image = None
    if args.file is not None:  # else --remove: the parser wants one of them
        try:
            with open(args.file, "rb") as file:
                image = file.read(MAX_LOGO_BYTES + 1)
        except OSError as error:
            raise ConfigError(f"cannot read {args.file}: {error.strerror}") from None
    _services().administration.set_client_logo(args.client_id, image, SYSTEM, "")
    _print({"client_id": args.client_id, "logo": image is not None})
    return 0


def cmd_clients_rotate_secret(args: argparse.Namespace) -> int:
    client, secret = _services().administration.rotate_client_secret(args.client_id, SYSTEM, "")
    _print({"client_id": client.client_id, "client_secret": secret})  # shown once
    return 0


def _user_json(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "email_verified": user.email_verified,
        "password": user.password_hash is not None,  # False: signs in at an identity provider
        "disabled": user.disabled_at is not None,
    }


def _user(svc: Services, username: str) -> User:
    user = svc.accounts.find_user(username)
    if user is None:
        raise DomainNotFound("No such user.")
    return user


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _services().accounts.search_users(args.search, args.limit)
    _print({"users": [_user_json(user) for user in users]})
    return 0


def cmd_users_show(args: argparse.Namespace) -> int:
    svc = _services()
    user = _user(svc, args.username)
    now = wall_clock()
    phones = [
        {
            "mobile_device_id": device.id,
            "device_id": device.device_id,
            "name": device.name,
            "platform": device.platform,
            "signed_in_at": _iso(device.created_at),
            "expires_at": _iso(device.expires_at),
        }
        for device in svc.accounts.devices_of(user.user_id)
        if device.revoked_at is None and device.expires_at > now
    ]
    _print({**_user_json(user), "signed_in_phones": phones})
    return 0


def cmd_users_set_password(args: argparse.Namespace) -> int:
    svc = _services()
    _user(svc, args.username)  # a wrong name fails before the password is typed
    accounts = svc.accounts
    password = sys.stdin.readline().rstrip("\r\n")  # --password-stdin is required by the parser
    user = accounts.set_password(args.username, password, SYSTEM)
    _print({"user_id": user.user_id, "username": user.username})
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    """Disable a user: sign-in refused, phones and browsers signed out, sessions revoked."""
    user, revoked = _services().administration.set_user_disabled(args.username, True, SYSTEM, "")
    _print({**_user_json(user), "sessions_revoked": len(revoked)})
    return 0


def cmd_users_enable(args: argparse.Namespace) -> int:
    user, _ = _services().administration.set_user_disabled(args.username, False, SYSTEM, "")
    _print(_user_json(user))
    return 0


def cmd_users_delete(args: argparse.Namespace) -> int:
    """Erase a user (name, password, email, identity links) and revoke every session."""
    user, revoked = _services().administration.delete_user(args.username, SYSTEM, "")
    _print({"user_id": user.user_id, "deleted": True, "sessions_revoked": len(revoked)})
    return 0


def cmd_users_set_email(args: argparse.Namespace) -> int:
    email = None if args.remove else args.email
    if email is None and not args.remove:
        raise ConfigError("give an --email, or --remove")
    user = _services().accounts.set_email(args.username, email, args.verified, SYSTEM)
    _print(_user_json(user))
    return 0


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def cmd_users_create(args: argparse.Namespace) -> int:
    accounts = _services().accounts  # a wrong setting fails before the password is typed
    password = sys.stdin.readline().rstrip("\r\n")  # --password-stdin is required by the parser
    user = accounts.create_user(
        args.username,
        password,
        args.display_name,
        email=args.email,
        email_verified=args.email_verified,
    )
    _print({"user_id": user.user_id})
    return 0


def cmd_admins_create(args: argparse.Namespace) -> int:
    admin_auth = _services().admin_auth  # a wrong setting fails before the password is typed
    password = sys.stdin.readline().rstrip("\r\n")  # --password-stdin is required by the parser
    admin = admin_auth.create(args.username, password)
    _print({"admin_id": admin.admin_id, "username": admin.username})
    return 0


def _admin_json(admin: Admin) -> dict[str, Any]:
    return {
        "admin_id": admin.admin_id,
        "username": admin.username,
        "disabled": admin.disabled_at is not None,
    }


def cmd_admins_list(_: argparse.Namespace) -> int:
    _print({"admins": [_admin_json(admin) for admin in _services().admin_auth.all()]})
    return 0


def cmd_admins_enable(args: argparse.Namespace) -> int:
    """Disable (no sign-in, sessions ended now) or enable an admin again."""
    admin = _services().admin_auth.set_disabled(args.username, args.admins == "disable")
    _print(_admin_json(admin))
    return 0


def cmd_admins_delete(args: argparse.Namespace) -> int:
    admin = _services().admin_auth.delete(args.username)
    _print({"admin_id": admin.admin_id, "username": admin.username, "deleted": True})
    return 0


def cmd_admins_set_password(args: argparse.Namespace) -> int:
    """A new password for an admin; their signed-in sessions stay until they expire."""
    admin_auth = _services().admin_auth
    if not admin_auth.exists(args.username):  # before the password is typed
        raise DomainNotFound("No such admin.")
    password = sys.stdin.readline().rstrip("\r\n")  # --password-stdin is required by the parser
    admin = admin_auth.reset_password(args.username, password)
    _print({"admin_id": admin.admin_id, "username": admin.username})
    return 0


def cmd_keys_reencrypt(_: argparse.Namespace) -> int:
    """KEK rotation: put the new key first in AUTHSERVER_KEY_ENCRYPTION_KEYS, run this, then
    drop the old key. Keys stored before encryption at rest are sealed too."""
    config = Config.from_env()
    database = Database(config.database_url)
    rewritten = SqlKeys(database, key_cipher(config)).reencrypt()
    database.dispose()
    _print({"reencrypted": rewritten})
    return 0


def cmd_keys_new_kek(_: argparse.Namespace) -> int:
    _print({"key_encryption_key": Fernet.generate_key().decode("ascii")})
    return 0


def cmd_keys_rotate(_: argparse.Namespace) -> int:
    """Add a signing key; it is published now and signs once caches have seen it."""
    svc = _services()
    key, removed = svc.keys.rotate()
    _print(
        {
            "kid": key.kid,
            "signs_from": datetime.fromtimestamp(
                key.created_at + KEY_ACTIVATION_DELAY, UTC
            ).isoformat(),
            "published": [k["kid"] for k in svc.keys.jwks()["keys"]],
            "removed": removed,
        }
    )
    return 0


def _check_schema(svc: Services) -> None:
    current, head = svc.database.schema_revision()
    if current != head:
        raise ConfigError(
            f"The database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `authserver db upgrade` first."
        )


def _check_redis(config: Config) -> None:
    """Refuse to serve on a configured Redis that does not answer PING within seconds."""
    if not config.redis_url:
        return
    # A client of its own: one try, short timeouts (the app's client retries with backoff).
    client = redis.Redis.from_url(
        config.redis_url, socket_connect_timeout=3, socket_timeout=3, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except redis.RedisError as error:
        options = client.connection_pool.connection_kwargs
        where = options.get("path") or f"{options.get('host')}:{options.get('port')}"  # no password
        raise ConfigError(
            f"Redis at {where} (AUTHSERVER_REDIS_URL) does not answer: {type(error).__name__}. "
            "Start it or correct the URL, then start the server again."
        ) from None
    finally:
        client.close()


def _serving_config(args: argparse.Namespace, *, lan_demo: bool = False) -> Config:
    """The config to serve with; without AUTHSERVER_ISSUER the issuer is where we listen."""
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return Config.from_env(defaults={"issuer": f"http://{host}:{args.port}"}, lan_demo=lan_demo)


def _server_options(config: Config, args: argparse.Namespace) -> ServerOptions:
    """What to serve with, checked before anything else is done: a wrong option never starts."""
    extra: dict[str, str] = {}
    for item in args.server_option:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--server-option takes NAME=VALUE, got {item!r}")
        extra[name.strip().replace("-", "_")] = value
    options = ServerOptions(args.host, args.port, args.workers, args.threads, extra)
    if options.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not config.redis_url and options.workers != 1:
        # The embedded flow store lives in one process; more would split the flows.
        raise ConfigError(
            "--workers > 1 needs AUTHSERVER_REDIS_URL (the embedded store is per process)."
        )
    check_threads(config, options.threads)
    granian_options(config, options)  # a wrong --server-option fails here
    return options


def cmd_serve(args: argparse.Namespace) -> int:
    config = _serving_config(args, lan_demo=getattr(args, "lan", None) is not None)
    options = _server_options(config, args)
    if options.workers > 1:
        # Each worker counts in files of its own here; /metrics adds them up. Set before any
        # worker starts (and before this process counts anything itself: it counts nothing).
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="authserver-metrics-")
    svc = build_services(config)
    _check_schema(svc)
    _check_redis(config)
    svc.keys.jwks()  # create the signing key now, not on the first request
    svc.close()
    run(config, options)
    return 0


def _member(name: str) -> str:
    """A shell filter printing one member of the JSON answer on its stdin."""
    return f"python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{name}\"])'"


def _try_it(base: str, client_id: str, *, lan: bool) -> dict[str, list[str]]:
    """Ready-to-paste commands with the real client id: the reference clients, and the whole
    flow in curl (each answer kept in a shell variable, so no placeholder is left to fill)."""
    insecure = "QRLOGIN_INSECURE_LAN=1 " if lan else ""
    sign_in = json.dumps(
        {
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
            "device": {"id": "phone-1", "name": "My phone", "platform": "ios"},
        },
        separators=(",", ":"),
    )
    phone = "-H \"Authorization: Bearer $DEVICE_TOKEN\" -H 'X-Device-Id: phone-1'"
    json_body = "-H 'Content-Type: application/json'"
    return {
        # In a second terminal: it shows the QR code and the code, and waits for the phone.
        "qrlogin_pc": [
            f"{insecure}qrlogin-pc login --server {base} --client-id {client_id} --number-matching"
        ],
        # In a third: sign the simulated phone in once, then type the code the PC shows.
        "qrlogin_phone": [
            f"echo {DEMO_PASSWORD} | {insecure}qrlogin-phone signin --server {base} "
            f"--username {DEMO_USERNAME} --password-stdin",
            f"{insecure}qrlogin-phone scan --code CODE-SHOWN-BY-QRLOGIN-PC",
        ],
        "try_it": [
            f"PC=$(curl -s -d client_id={client_id} {base}/oauth/device_authorization)",
            f'USER_CODE=$(echo "$PC" | {_member("user_code")})',
            f'DEVICE_CODE=$(echo "$PC" | {_member("device_code")})',
            f"DEVICE_TOKEN=$(curl -s {json_body} -d '{sign_in}' {base}/mobile/v1/sessions "
            f"| {_member('device_token')})",
            f"CONFIRM_TOKEN=$(curl -s {phone} {json_body} "
            f'-d "{{\\"user_code\\":\\"$USER_CODE\\"}}" {base}/mobile/v1/scan '
            f"| {_member('confirm_token')})",
            f"curl -s {phone} {json_body} "
            f'-d "{{\\"confirm_token\\":\\"$CONFIRM_TOKEN\\"}}" {base}/mobile/v1/confirm',
            "curl -s -d grant_type=urn:ietf:params:oauth:grant-type:device_code "
            f'-d client_id={client_id} -d "device_code=$DEVICE_CODE" {base}/oauth/token',
        ],
    }


def lan_address() -> str:
    """This machine's address on its LAN: the source address of a route outwards (a UDP
    socket's connect() sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def cmd_demo(args: argparse.Namespace) -> int:
    """Upgrade the database, create the demo client and user if missing, print how to try."""
    if args.lan is not None:
        address = lan_address() if args.lan == "auto" else args.lan
        if not is_private_literal(address):
            raise ConfigError(
                f"--lan needs a private address (192.168.x.x, 10.x.x.x, 172.16-31.x.x, fd..), "
                f"got {address!r}: give it as --lan ADDRESS"
            )
        args.host = address
        sys.stderr.write(LAN_WARNING.format(address=address))
    config = _serving_config(args, lan_demo=args.lan is not None)
    args.workers = 1  # the embedded flow store lives in this one process
    _server_options(config, args)
    svc = build_services(config)
    svc.database.upgrade()
    client = (
        svc.clients.find_by_name(DEMO_CLIENT_NAME)
        or svc.clients.create(DEMO_CLIENT_NAME, confidential=False, scope=None)[0]
    )
    if svc.accounts.find_user(DEMO_USERNAME) is None:
        svc.accounts.create_user(DEMO_USERNAME, DEMO_PASSWORD, "Demo User")
    # The console's admin gets a fresh random password on every start, printed below: an
    # admin password that is published in a README would outlive the demo.
    admin_password = secrets.token_urlsafe(12)
    if svc.admin_auth.exists(DEMO_ADMIN):
        svc.admin_auth.reset_password(DEMO_ADMIN, admin_password)
    else:
        svc.admin_auth.create(DEMO_ADMIN, admin_password)
    base = config.issuer  # where people and the QR code reach it
    _print(
        {
            "server": base,
            "issuer": config.issuer,
            "demo_client_id": client.client_id,
            # Open it on the PC, approve with the phone (or /device in another browser).
            "pc_login_page": f"{base}/login?client_id={client.client_id}",
            "demo_user": {"username": DEMO_USERNAME, "password": DEMO_PASSWORD},
            "admin_console": {
                "url": f"{base}/admin/",
                "username": DEMO_ADMIN,
                "password": admin_password,
            },
            **_try_it(base, client.client_id, lan=args.lan is not None),
        }
    )
    sys.stdout.flush()
    svc.close()
    return cmd_serve(args)


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, as pip installed it)."""
    try:
        return metadata.version("authserver")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


# Never a password option: it would be in the shell history and in `ps` for every user to read.
_STDIN = "read the password from the first line of stdin (required)"


def _parser() -> argparse.ArgumentParser:
    parser = _JsonArgumentParser(prog="authserver", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="Alembic upgrade to head").set_defaults(func=cmd_db_upgrade)

    for name, func, help_text in (
        ("serve", cmd_serve, "run the server (granian)"),
        ("demo", cmd_demo, "set up a demo client and user, then serve (one process)"),
    ):
        serve = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
        )
        serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
        serve.add_argument("--port", type=int, default=8000, help="port to listen on")
        if name == "serve":
            serve.add_argument(
                "--workers", type=int, default=1, help="processes (more than 1 needs Redis)"
            )
        else:
            serve.add_argument(
                "--lan",
                nargs="?",
                const="auto",
                default=None,
                metavar="ADDRESS",
                help="try it with a phone on the same Wi-Fi: listen on this machine's private "
                "LAN address (or ADDRESS) and use it as the issuer, over plain http (demo only)",
            )
        serve.add_argument(
            "--threads",
            type=int,
            default=32,
            help="app threads per process; at least AUTHSERVER_STATUS_MAX_WAITERS + 4",
        )
        serve.add_argument(
            "--server-option",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a granian option, repeatable, e.g. backpressure=2048, "
            "http1_header_read_timeout=5000 (ms), ssl_cert=PATH; README 'Serving'",
        )
        serve.set_defaults(func=func)

    clients = commands.add_parser("clients").add_subparsers(dest="clients", required=True)
    create_client = clients.add_parser("create", help="register a PC client")
    create_client.add_argument("--name", required=True, help="shown to the user on the phone")
    create_client.add_argument("--confidential", action="store_true", help="give it a secret")
    create_client.add_argument(
        "--scope",
        default=None,
        help='allowed scopes, e.g. "profile email" (default: all of AUTHSERVER_SCOPES)',
    )
    create_client.add_argument(
        "--resource-server",
        action="store_true",
        help="an API that introspects tokens (RFC 7662), not a PC client; always confidential",
    )
    _registration_options(create_client)
    create_client.add_argument(
        "--mobile-app",
        action="store_true",
        help="your own mobile app: exchanges its sign-in's token for a device token (RFC 8693)",
    )
    create_client.set_defaults(func=cmd_clients_create)
    update_client = clients.add_parser(
        "update", help="change a client's name, scope, redirect URIs or grants"
    )
    update_client.add_argument("client_id")
    update_client.add_argument("--name", default=None, help="a new name (default: unchanged)")
    update_client.add_argument("--scope", default=None, help="allowed scopes, replaces them")
    _registration_options(update_client)
    update_client.set_defaults(func=cmd_clients_update)
    clients.add_parser("list", help="every client and its registration").set_defaults(
        func=cmd_clients_list
    )
    for name, func, help_text in (
        ("show", cmd_clients_show, "one client and its registration"),
        (
            "disable",
            cmd_clients_enable,
            "no new logins, every session revoked (a running server without Redis refuses "
            "its live access tokens after its restart; the admin API does it at once)",
        ),
        ("enable", cmd_clients_enable, "let a disabled client log users in again"),
        (
            "rotate-secret",
            cmd_clients_rotate_secret,
            "a new secret for a confidential client, printed once; the old one stops working",
        ),
    ):
        one_client = clients.add_parser(name, help=help_text, description=help_text)
        one_client.add_argument("client_id")
        one_client.set_defaults(func=func)
    client_logo = clients.add_parser(
        "set-logo",
        help="the logo shown next to the client's name on the login and approval pages "
        "(PNG, JPEG, GIF or WebP up to 1 MiB; stored as a 128-pixel PNG)",
    )
    client_logo.add_argument("client_id")
    which_logo = client_logo.add_mutually_exclusive_group(required=True)
    which_logo.add_argument("file", nargs="?", default=None, help="the image file")
    which_logo.add_argument("--remove", action="store_true", help="take the logo away")
    client_logo.set_defaults(func=cmd_clients_set_logo)
    delete_client = clients.add_parser(
        "delete",
        help="revoke every session and retire the client for good (its id is never reused)",
    )
    delete_client.add_argument("client_id")
    _yes_option(delete_client)
    delete_client.set_defaults(func=cmd_clients_delete)

    admins = commands.add_parser("admins").add_subparsers(dest="admins", required=True)
    create_admin = admins.add_parser("create", help="create an admin (API and console)")
    create_admin.add_argument("username")
    create_admin.add_argument("--password-stdin", action="store_true", required=True, help=_STDIN)
    create_admin.set_defaults(func=cmd_admins_create)
    admins.add_parser("list", help="every admin").set_defaults(func=cmd_admins_list)
    admin_password = admins.add_parser(
        "set-password", help="a new password for an admin (at least 12 characters)"
    )
    admin_password.add_argument("username")
    admin_password.add_argument("--password-stdin", action="store_true", required=True, help=_STDIN)
    admin_password.set_defaults(func=cmd_admins_set_password)
    for name, help_text in (
        ("disable", "refuse the admin's sign-in and end their sessions now"),
        ("enable", "let a disabled admin sign in again"),
    ):
        one_admin = admins.add_parser(name, help=help_text, description=help_text)
        one_admin.add_argument("username")
        one_admin.set_defaults(func=cmd_admins_enable)
    delete_admin = admins.add_parser(
        "delete", help="remove an admin and their sessions (the audit trail keeps their id)"
    )
    delete_admin.add_argument("username")
    _yes_option(delete_admin)
    delete_admin.set_defaults(func=cmd_admins_delete)

    keys = commands.add_parser("keys").add_subparsers(dest="keys", required=True)
    keys.add_parser(
        "reencrypt",
        help="seal every private signing key with the first AUTHSERVER_KEY_ENCRYPTION_KEYS key",
    ).set_defaults(func=cmd_keys_reencrypt)
    keys.add_parser(
        "new-kek", help="print a new key-encryption key (for AUTHSERVER_KEY_ENCRYPTION_KEYS)"
    ).set_defaults(func=cmd_keys_new_kek)
    keys.add_parser("rotate", help="add a new signing key (RFC 7517 JWKS)").set_defaults(
        func=cmd_keys_rotate
    )

    users = commands.add_parser("users").add_subparsers(dest="users", required=True)
    create_user = users.add_parser("create", help="create a mobile app user")
    create_user.add_argument("username")
    create_user.add_argument("--password-stdin", action="store_true", required=True, help=_STDIN)
    create_user.add_argument(
        "--display-name", default=None, help="shown in the app (default: the username)"
    )
    create_user.add_argument(
        "--email", default=None, help="released to clients granted the email scope (OIDC)"
    )
    create_user.add_argument(
        "--email-verified",
        action="store_true",
        help="the address is known to be the user's (the email_verified claim)",
    )
    create_user.set_defaults(func=cmd_users_create)
    list_users = users.add_parser("list", help="users by username")
    list_users.add_argument(
        "--search", default="", help="only those whose username or display name contains this"
    )
    list_users.add_argument("--limit", type=_positive, default=100, help="at most this many")
    list_users.set_defaults(func=cmd_users_list)
    show_user = users.add_parser("show", help="one user and the phones signed in as them")
    show_user.add_argument("username")
    show_user.set_defaults(func=cmd_users_show)
    user_password = users.add_parser(
        "set-password",
        help="a new password for a user (signed-in phones stay signed in)",
    )
    user_password.add_argument("username")
    user_password.add_argument("--password-stdin", action="store_true", required=True, help=_STDIN)
    user_password.set_defaults(func=cmd_users_set_password)
    disable_user = users.add_parser(
        "disable",
        help="refuse the user's sign-ins and approvals, sign their phones and browsers out, "
        "revoke their sessions",
    )
    disable_user.add_argument("username")
    disable_user.set_defaults(func=cmd_users_disable)
    enable_user = users.add_parser("enable", help="let a disabled user sign in again")
    enable_user.add_argument("username")
    enable_user.set_defaults(func=cmd_users_enable)
    user_email = users.add_parser(
        "set-email", help="the email address released with the email scope (OIDC)"
    )
    user_email.add_argument("username")
    which_email = user_email.add_mutually_exclusive_group(required=True)
    which_email.add_argument("--email", help="the new address")
    which_email.add_argument("--remove", action="store_true", help="take the address away")
    user_email.add_argument(
        "--verified", action="store_true", help="the address is known to be the user's"
    )
    user_email.set_defaults(func=cmd_users_set_email)
    delete_user = users.add_parser(
        "delete",
        help="erase a user (name, password, email, identity links), revoke their sessions and "
        "sign their phones and browsers out; the username is free again",
    )
    delete_user.add_argument("username")
    _yes_option(delete_user)
    delete_user.set_defaults(func=cmd_users_delete)
    return parser


def _yes_option(parser: argparse.ArgumentParser) -> None:
    """A deletion cannot be undone: the operator says so on the command line."""
    parser.add_argument(
        "--yes", action="store_true", required=True, help="yes, delete it (cannot be undone)"
    )


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _registration_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        metavar="URI",
        help="a website's exact redirect URI (https, or http on loopback), repeatable",
    )
    parser.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=None,
        metavar="URI",
        help="where /logout may send the browser back to, repeatable",
    )
    parser.add_argument(
        "--grant",
        action="append",
        default=None,
        choices=["authorization_code", "device_code"],
        help="what the client may do, repeatable (default: device_code); "
        "a website: --grant authorization_code with --redirect-uri",
    )
    parser.add_argument(
        "--number-matching",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="every QR login of this client needs the phone to pick the number the PC shows "
        "(default on create: off; the client must show the status channel's match_number)",
    )


def _fail(message: str) -> int:
    sys.stderr.write(json.dumps({"error": message}) + "\n")
    return 2


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the default is "not given"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


class _JsonArgumentParser(argparse.ArgumentParser):
    """Usage errors as JSON on stderr, like every other error of the command; every --help
    shows the defaults (the subcommands' parsers are of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(
            json.dumps({"error": message, "usage": self.format_usage().strip()}) + "\n"
        )
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DomainError as error:
        return _fail(error.description)
    except (ConfigError, KeyDecryptionError) as error:
        return _fail(str(error))
    except (SQLAlchemyError, redis.RedisError, AlembicError) as error:
        # An operator's tool: name the failing part and its first line, not a traceback.
        return _fail(f"{type(error).__name__}: {_first_line(error)}")
    except Exception as error:  # a bug, but still the promised JSON, not a traceback
        return _fail(f"unexpected {type(error).__name__}: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    """An error's first line: SQLAlchemy's following lines carry the statement and parameters."""
    return (str(error).strip().splitlines() or [""])[0][:500]


if __name__ == "__main__":
    raise SystemExit(main())
