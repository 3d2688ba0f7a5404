"""Reference clients of the QR login server.

- `qrlogin_client.pc`: a typed library for PC apps (RFC 8628 device flow, status channel, tokens).
- `qrlogin_client.pc_cli`: the `qrlogin-pc` console script built on it.
- `qrlogin_client.phone`: a mobile-app simulator (sign in, decode a QR image, approve or deny).
- `qrlogin_client.phone_cli`: the `qrlogin-phone` console script built on it.
"""

__version__ = "0.1.0"
