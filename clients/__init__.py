"""Reference clients of the QR login server.

- `clients.pc`: a typed library for PC apps (RFC 8628 device flow, status channel, tokens).
- `clients.pc_cli`: the `qrlogin-pc` console script built on it.
- `clients.phone`: a mobile-app simulator (sign in, decode a QR image, approve or deny).
- `clients.phone_cli`: the `qrlogin-phone` console script built on it.
"""

__version__ = "0.1.0"
