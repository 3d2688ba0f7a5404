"""A mobile-app simulator: what the phone app does in the QR login, minus the camera.

    state = PhoneStateStore(path).load_or_create()          # a persistent device id
    app = MobileApp(server, state.device_id)
    app.sign_in("alice", password, state.device_name, state.platform)
    screen = app.scan(qr=decode_qr_image("qr.png"))         # or user_code="WDJB-MJHT"
    print(screen.describe())
    app.confirm(screen)                                      # or app.deny(screen)

The QR code is decoded for real, by zxing-cpp (a port of ZXing, the decoder many Android apps
use) from an image loaded with Pillow: the `[phone]` extra, so only `decode_qr_image` needs it.
"""

from __future__ import annotations

import platform
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from qrlogin_client.dpop import DpopKey
from qrlogin_client.files import config_home, read_private_json, write_private_json
from qrlogin_client.http import (
    DEFAULT_TIMEOUT,
    ClientError,
    HttpResponse,
    RequestsTransport,
    Transport,
    require_secure_url,
)
from qrlogin_client.i18n import _, _n

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "ApprovalScreen",
    "MobileApiError",
    "MobileApp",
    "PhoneError",
    "PhoneState",
    "PhoneStateStore",
    "QRDecodeError",
    "decode_qr_image",
    "default_state_file",
]

# In English here, in the user's language where shown (the catalogue has each one).
SCOPE_MEANINGS = {
    "openid": "who you are: your account's identifier",
    "profile": "your name and username",
    "email": "your email address",
    "offline_access": "stay signed in after you leave",
}


class PhoneError(ClientError):
    """Base of the simulator's errors."""


class QRDecodeError(PhoneError):
    """The image could not be read, or holds no QR code."""


class PhoneNotSignedIn(PhoneError):
    """The phone has no device token: run `qrlogin-phone signin` first."""


class MobileApiError(PhoneError):
    """An error answer of the mobile API, e.g. `invalid_credentials` or `already_scanned`."""

    def __init__(self, error: str, description: str | None, status: int) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}" if description else error)

    @classmethod
    def from_response(cls, response: HttpResponse) -> MobileApiError:
        body = response.json_object()
        error = body.get("error")
        description = body.get("error_description")
        return cls(
            error if isinstance(error, str) and error else f"http_{response.status}",
            description if isinstance(description, str) else None,
            response.status,
        )


# --- the camera -----------------------------------------------------------------------------
def decode_qr_image(path: str | Path) -> str:
    """The text of the one QR code in the image file at `path` (PNG, JPEG, ...)."""
    try:  # the [phone] extra: the rest of the simulator works without it (--code, --text)
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise QRDecodeError(
            _(
                "Reading a QR image needs the phone extra: "
                "pip install 'qrlogin-client[phone]' ({error})"
            ).format(error=exc)
        ) from exc
    path = Path(path)
    try:
        with Image.open(path) as opened:
            image = _flatten(opened)
    except FileNotFoundError:
        raise QRDecodeError(_("No such image file: {path}").format(path=path)) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise QRDecodeError(
            _("{path} is not an image that can be read: {error}").format(path=path, error=exc)
        ) from exc
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormats(zxingcpp.QRCode))
    texts = sorted({barcode.text for barcode in found if barcode.valid and barcode.text})
    if not texts:
        raise QRDecodeError(_("No QR code found in {path}.").format(path=path))
    if len(texts) > 1:
        raise QRDecodeError(
            _n(
                "{path} holds {count} different QR code; crop it to one.",
                "{path} holds {count} different QR codes; crop it to one.",
                len(texts),
            ).format(path=path, count=len(texts))
        )
    return texts[0]


def _flatten(image: Image.Image) -> Image.Image:
    """Grayscale, with any transparency laid on white (a transparent PNG is white on screen)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    return image.convert("L")


# --- the phone's state ----------------------------------------------------------------------
def default_state_file() -> Path:
    return config_home() / "qrlogin-phone" / "state.json"


@dataclass
class PhoneState:
    """What the app keeps between runs: its device id (generated once) and sign-in."""

    device_id: str
    device_name: str
    platform: str
    server: str | None = None
    username: str | None = None
    device_token: str | None = field(default=None, repr=False)
    # What the server answered at the last sign-in: sent with the next one, so other people's
    # wrong passwords never lock this phone out (the server's README, "Rate limits").
    device_cookie: str | None = field(default=None, repr=False)
    # The app's private DPoP key (PEM), registered at sign-in: the device token is bound to it
    # (RFC 9449), so a copy of this file's token without the key is refused.
    dpop_key: str | None = field(default=None, repr=False)

    @classmethod
    def new(cls, device_name: str | None = None, device_platform: str = "android") -> PhoneState:
        return cls(
            device_id=f"qrlogin-phone-{secrets.token_hex(8)}",
            device_name=device_name or f"qrlogin-phone on {platform.node() or 'this computer'}",
            platform=device_platform,
            dpop_key=DpopKey().to_pem(),
        )

    def key(self) -> DpopKey:
        """The app's DPoP key; made (and kept in this state) on first use."""
        if self.dpop_key is None:
            self.dpop_key = DpopKey().to_pem()
        return DpopKey.from_pem(self.dpop_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "device_name": self.device_name,
            "platform": self.platform,
            "server": self.server,
            "username": self.username,
            "device_token": self.device_token,
            "device_cookie": self.device_cookie,
            "dpop_key": self.dpop_key,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhoneState:
        def optional(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) and value else None

        return cls(
            device_id=str(data["device_id"]),
            device_name=str(data["device_name"]),
            platform=str(data["platform"]),
            server=optional("server"),
            username=optional("username"),
            device_token=optional("device_token"),
            device_cookie=optional("device_cookie"),
            dpop_key=optional("dpop_key"),
        )


class PhoneStateStore:
    """The state file: JSON, mode 0600 (it holds the device token)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_state_file()

    def load(self) -> PhoneState | None:
        try:
            data = read_private_json(self.path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PhoneError(
                _("Cannot read the state file {path}: {error}").format(path=self.path, error=exc)
            ) from exc
        try:
            return PhoneState.from_dict(data)
        except (KeyError, TypeError) as exc:
            raise PhoneError(
                _("The state file {path} is malformed: {error}").format(path=self.path, error=exc)
            ) from exc

    def load_or_create(
        self, device_name: str | None = None, device_platform: str = "android"
    ) -> PhoneState:
        """The saved state, or a new one with a fresh device id (saved at once)."""
        state = self.load()
        if state is None:
            state = PhoneState.new(device_name, device_platform)
            self.save(state)
        return state

    def save(self, state: PhoneState) -> None:
        write_private_json(self.path, state.to_dict())


# --- the approval screen ----------------------------------------------------------------------
@dataclass(frozen=True)
class ApprovalScreen:
    """What the phone shows before the user confirms: who asks, for what, from where."""

    confirm_token: str = field(repr=False)
    expires_in: int
    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    # What the server did not say is "" here, and "unknown" in the user's language on screen.
    requester_ip: str
    device_says: str  # the PC's parsed user agent: its own claim, shown as such
    requested_at: str
    user_code: str
    # Number matching: pick the one the PC shows (the server says which are offered).
    number_choices: tuple[int, ...] = ()
    place: str = ""  # approximate, from the PC's address
    warnings: tuple[str, ...] = ()  # the server's: not_on_your_network, first_sign_in_from_place

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> ApprovalScreen:
        try:
            client = body["client"]
            requester = body["requesting_device"]
            return cls(
                confirm_token=str(body["confirm_token"]),
                expires_in=int(body.get("expires_in") or 0),
                client_id=str(client["client_id"]),
                client_name=str(client["name"]),
                scopes=tuple(str(scope) for scope in body.get("scopes") or ()),
                requester_ip=str(requester.get("ip") or ""),
                device_says=str(requester.get("device_says") or ""),
                requested_at=str(requester.get("requested_at") or ""),
                user_code=str(body["user_code"]),
                number_choices=tuple(int(n) for n in body.get("number_choices") or ()),
                place=str((requester.get("place") or {}).get("name") or ""),
                warnings=tuple(str(w) for w in body.get("warnings") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PhoneError(_("Unexpected answer to the scan: {error}").format(error=exc)) from exc

    def describe(self) -> str:
        """The approval screen as text, in the user's language."""
        unknown = _("unknown")
        wants = [
            _("{scope} ({meaning})").format(scope=scope, meaning=_(SCOPE_MEANINGS[scope]))
            if scope in SCOPE_MEANINGS
            else scope
            for scope in self.scopes
        ] or [_("(nothing beyond signing in)")]
        app = _("{name} (client {client_id})")
        says = _("{device}  (its own claim, not checked)")
        code = _("{code}  <- the PC must show this same code")
        rows = [
            (_("App"), app.format(name=self.client_name, client_id=self.client_id)),
            (_("Wants"), wants[0]),
            *(("", more) for more in wants[1:]),
            (
                _("From"),
                _("{ip} ({place})").format(
                    ip=self.requester_ip or unknown, place=self.place or unknown
                ),
            ),
            (_("It says"), says.format(device=self.device_says or _("an unknown device"))),
            (_("Requested"), _local_time(self.requested_at) if self.requested_at else unknown),
            (_("Code"), code.format(code=self.user_code)),
        ]
        if self.number_choices:
            numbers = "  ".join(str(n) for n in self.number_choices)
            pick = _("{numbers}  <- the one the PC shows; a wrong one declines")
            rows.append((_("Pick"), pick.format(numbers=numbers)))
        labelled = _("{label}:")
        table = "\n".join(
            f"  {_pad(labelled.format(label=label) if label else '', 11)} {value}"
            for label, value in rows
        )
        alerts = "".join(f"{_(WARNINGS[w])}\n" for w in self.warnings if w in WARNINGS)
        advice = _(
            "Only approve if you started this sign-in yourself, on a computer in front of you,\n"
            "and it shows the same code. Otherwise decline: someone may be trying to get into\n"
            "your account. (This screen is valid for {seconds} s.)"
        ).format(seconds=self.expires_in)
        title = _("Sign in on another device?")
        return f"{title}\n\n{table}\n\n{alerts}{advice}\n"


# The server's warnings, in words this app owns (never text the requester sent); in English
# here, in the user's language where shown.
WARNINGS = {
    "not_on_your_network": "WARNING: not on your network. The computer asking is on a different "
    "network than this phone.",
    "first_sign_in_from_place": "Note: the first sign-in to your account from this place.",
}


def _pad(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns (a Chinese character takes two)."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(width - columns, 0)


def _local_time(iso: str) -> str:
    """An ISO 8601 time in this machine's zone, to the second, or as given if unreadable."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except ValueError:
        return iso


# --- the mobile API ---------------------------------------------------------------------------
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
MOBILE_DEVICE_TOKEN = "urn:authserver:token-type:mobile-device-token"
SUBJECT_TOKEN_TYPES = ("access_token", "id_token", "jwt")  # RFC 8693 §3, without the prefix


class MobileApp:
    """The mobile API (`/mobile/v1`): the device token goes with the device id, always."""

    def __init__(
        self,
        server: str,
        device_id: str,
        device_token: str | None = None,
        *,
        device_cookie: str | None = None,
        key: DpopKey | None = None,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.server = require_secure_url(server.rstrip("/"))
        self.device_id = device_id
        self.device_token = device_token
        self.device_cookie = device_cookie
        self.key = key  # with a key, the device token is bound to it (RFC 9449)
        self._nonce: str | None = None
        self._transport = transport or RequestsTransport("qrlogin-phone (mobile app simulator)")
        self._timeout = timeout

    def sign_in(self, username: str, password: str, device_name: str, device_platform: str) -> str:
        """Sign this phone in; returns (and keeps) the device token and device cookie."""
        body: dict[str, Any] = {
            "username": username,
            "password": password,
            "device": {"id": self.device_id, "name": device_name, "platform": device_platform},
        }
        if self.device_cookie:
            body["device_cookie"] = self.device_cookie
        response = self._send("POST", f"{self.server}/mobile/v1/sessions", json_body=body)
        if response.status not in (200, 201):
            raise MobileApiError.from_response(response)
        answer = response.json_object()
        token = answer.get("device_token")
        if not isinstance(token, str) or not token:
            raise PhoneError(_("The sign-in answer has no device_token."))
        self.device_token = token
        cookie = answer.get("device_cookie")
        self.device_cookie = cookie if isinstance(cookie, str) and cookie else self.device_cookie
        return token

    def exchange_token(
        self,
        client_id: str,
        subject_token: str,
        subject_token_type: str,
        device_name: str,
        device_platform: str,
    ) -> str:
        """Sign this phone in with a token of the app's own identity provider (RFC 8693 token
        exchange at the token endpoint); returns (and keeps) the device token."""
        response = self._send(
            "POST",
            f"{self.server}/oauth/token",
            form={
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "client_id": client_id,
                "subject_token": subject_token,
                "subject_token_type": f"urn:ietf:params:oauth:token-type:{subject_token_type}",
                "requested_token_type": MOBILE_DEVICE_TOKEN,
                "device_id": self.device_id,
                "device_name": device_name,
                "device_platform": device_platform,
            },
        )
        if response.status != 200:
            raise MobileApiError.from_response(response)
        body = response.json_object()
        token = body.get("access_token")  # RFC 8693 §2.2.1 names the issued token so
        if body.get("issued_token_type") != MOBILE_DEVICE_TOKEN or not isinstance(token, str):
            raise PhoneError(_("The token exchange answer has no device token."))
        self.device_token = token
        return token

    def scan(self, *, qr: str | None = None, user_code: str | None = None) -> ApprovalScreen:
        """Send what the camera read (`qr`) or what the user typed (`user_code`)."""
        if (qr is None) == (user_code is None):
            raise ValueError("Pass exactly one of qr and user_code.")
        body = {"qr": qr} if qr is not None else {"user_code": user_code}
        return ApprovalScreen.from_response(self._call("POST", "scan", body).json_object())

    def confirm(self, screen: ApprovalScreen, number: int | None = None) -> str:
        """Approve: the PC gets its tokens. Returns the flow's status ("approved").

        With number matching (`screen.number_choices`), `number` is the one the PC shows; a
        wrong one declines the sign-in (MobileApiError number_mismatch)."""
        return self._decide("confirm", screen, number)

    def deny(self, screen: ApprovalScreen) -> str:
        """Decline: the PC gets access_denied. Returns the flow's status ("denied")."""
        return self._decide("deny", screen)

    def logins(self) -> list[dict[str, Any]]:
        """The user's signed-in computers ("this wasn't me" starts here)."""
        found = self._call("GET", "logins", None).json_object().get("logins")
        return [login for login in found or [] if isinstance(login, dict)]

    def end_login(self, login_id: str, *, report: bool = False) -> None:
        """Sign that computer out; with `report`, also say it was not the user."""
        if report:
            self._call("POST", f"logins/{quote(login_id, safe='')}/report", None)
        else:
            self._call("DELETE", f"logins/{quote(login_id, safe='')}", None)

    def sign_out(self) -> None:
        self._call("DELETE", "sessions", None)
        self.device_token = None

    def _decide(self, action: str, screen: ApprovalScreen, number: int | None = None) -> str:
        body: dict[str, Any] = {"confirm_token": screen.confirm_token}
        if number is not None:
            body["number"] = number
        answer = self._call("POST", action, body)
        return str(answer.json_object().get("status", ""))

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> HttpResponse:
        if not self.device_token:
            raise PhoneNotSignedIn(_("This phone is not signed in: run `qrlogin-phone signin`."))
        response = self._send(
            method,
            f"{self.server}/mobile/v1/{path}",
            headers={"X-Device-Id": self.device_id},
            json_body=body,
            device_token=self.device_token,
        )
        if not 200 <= response.status < 300:
            raise MobileApiError.from_response(response)
        return response

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        device_token: str | None = None,
        **body: Any,
    ) -> HttpResponse:
        """One request, with the device token (DPoP-bound with a key, else Bearer) and a fresh
        proof; once more with the server's nonce if it asks for one (RFC 9449 §8)."""
        for _attempt in range(2):
            sent = dict(headers or {})
            if self.key is not None:
                sent["DPoP"] = self.key.proof(
                    method, url, access_token=device_token, nonce=self._nonce
                )
            if device_token is not None:
                scheme = "DPoP" if self.key is not None else "Bearer"
                sent["Authorization"] = f"{scheme} {device_token}"
            response = self._transport.request(
                method, url, headers=sent, timeout=self._timeout, **body
            )
            nonce = {k.lower(): v for k, v in response.headers.items()}.get("dpop-nonce")
            if nonce:
                self._nonce = nonce
            error = response.body.get("error") if isinstance(response.body, dict) else None
            if error != "use_dpop_nonce" or not nonce:
                return response
        return response
