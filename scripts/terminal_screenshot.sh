#!/usr/bin/env bash
# Screenshot a real qrlogin-pc run for the README: `authserver demo`, qrlogin-pc in an xterm on
# a virtual screen (Xvfb), the phone simulator scanning the QR PNG and approving.
# Needs Debian's xvfb, xterm, imagemagick and fonts-dejavu-core. Writes docs/terminal-client.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
work=$(mktemp -d)
port=$("$bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
display=${DISPLAY_NUMBER:-:97}
cleanup() {
  kill "${server:-}" "${xvfb:-}" "${term:-}" 2>/dev/null || true
  # `script` runs in a session of its own: end it and qrlogin-pc by what names our work dir.
  pkill -f "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$work" && exec env AUTHSERVER_POLL_INTERVAL=1 "$OLDPWD/$bin/authserver" demo --port $port \
  >"$work/demo.out" 2>"$work/demo.err") &
server=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/.well-known/oauth-authorization-server" >/dev/null && break; sleep 0.2; done
client_id=$("$bin/python" -c "import json,sys; print(json.JSONDecoder().raw_decode(open(sys.argv[1]).read().lstrip())[0]['demo_client_id'])" "$work/demo.out")

Xvfb $display -screen 0 1200x1000x24 >/dev/null 2>&1 &
xvfb=$!
sleep 1
# `script` gives qrlogin-pc a real terminal (live status line, colours) and records its output.
DISPLAY=$display xterm -geometry 82x47 -fn -misc-fixed-medium-r-normal--15-140-75-75-c-90-iso10646-1 -bg '#1e1e1e' -fg '#e6e6e6' \
  -e script -q -f -c "$bin/qrlogin-pc login --server http://127.0.0.1:$port --client-id $client_id --token-file $work/tokens.json; sleep 60" "$work/typescript" &
term=$!
for _ in $(seq 100); do grep -q "Waiting for scan" "$work/typescript" 2>/dev/null && break; sleep 0.1; done
user_code=$(grep -o '[A-Z]\{4\}-[A-Z]\{4\}' "$work/typescript" | head -1)

state="$work/phone.json"
printf 'demo-password\n' | "$bin/qrlogin-phone" signin --server "http://127.0.0.1:$port" --username demo --password-stdin --state "$state" >/dev/null
curl -sf "http://127.0.0.1:$port/qr/$user_code.png" -o "$work/qr.png"
# The phone shows its approval screen and the user answers "y" two seconds later: meanwhile
# the PC's status line says the code was scanned.
(sleep 2; echo y) | "$bin/qrlogin-phone" scan --image "$work/qr.png" --state "$state" >"$work/phone.out" &
phone=$!
for _ in $(seq 100); do grep -q "Scanned" "$work/typescript" 2>/dev/null && break; sleep 0.1; done
sleep 0.3
DISPLAY=$display import -window root -crop 662x480+0+0 "$work/scanned.png"
wait $phone
for _ in $(seq 100); do grep -q "Tokens saved" "$work/typescript" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
DISPLAY=$display import -window root -crop 662x480+0+0 "$work/signed-in.png"
mkdir -p docs
convert "$work/scanned.png" "$work/signed-in.png" -background '#888' -splice 8x0 +append -chop 8x0 docs/terminal-client.png
echo "docs/terminal-client.png: $user_code scanned, then approved"
