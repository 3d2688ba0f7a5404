// The PC login page (/login): a public OAuth client of this server, in the browser.
//
// One device authorization (RFC 8628 §3.1) at a time: its QR code and user code are shown, the
// status channel (POST /oauth/device_status, long-poll) says when the phone scanned and
// decided, and an approval is redeemed at the token endpoint as §3.4-3.5 demand (interval,
// slow_down adds 5 s). Tokens live in this script's memory only, never in storage.
// A hidden tab (Page Visibility API) stops long-polling and starts no new flow; when it is
// shown again it checks the flow. The code's lifetime counts down; an expired code says so
// and a new one comes when the user asks for it. A scanned QR code dims.
// A server that cannot be reached, or answers 5xx (503 temporarily_unavailable while one of
// its dependencies blips) or 429, is temporary: the page says so, keeps trying within the
// code's lifetime, doubles its wait for each failure in a row (RFC 8628 §3.5) and never asks
// sooner than Retry-After says.
// The device code and the tokens are bound to a DPoP key (RFC 9449) made here with WebCrypto:
// its private half is not extractable, so a device code or token copied out of this page is
// worthless elsewhere. Without WebCrypto (a plain-http page off localhost) it stays bearer.
// Every word it shows comes from the page (<script type="application/json" id="page-text">),
// in the page's language.
"use strict";

(() => {
  const root = document.getElementById("login");
  if (!root) return;
  const cfg = root.dataset;
  const words = JSON.parse(document.getElementById("page-text").textContent);
  // The page's words, with %(name)s filled in.
  const t = (key, values) =>
    words[key].replace(/%\((\w+)\)s/g, (all, name) => String((values || {})[name]));
  // The server's error_description is English (programs read it); a person reads its
  // translation when the page has one.
  const told = (description, fallback) =>
    description ? words.errors[description] || description : t(fallback);
  const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";
  const LONG_POLL_SECONDS = 25; // the server caps it (AUTHSERVER_STATUS_MAX_WAIT)
  const MAX_BACKOFF_SECONDS = 60; // the longest wait between tries while the server fails
  const MAX_START_TRIES = 8; // tries for a new code (about 3 minutes), then a button

  const byId = (id) => document.getElementById(id);
  const qrFrame = byId("qr-frame");
  const qr = byId("qr");
  const title = byId("status-title");
  const detail = byId("status-detail");
  const codeBox = byId("code-box");
  const userCode = byId("user-code");
  const retry = byId("retry");
  const signOut = byId("sign-out");
  const matchNumber = byId("match-number");
  const countdown = byId("countdown");

  // phase: "need-flow" (make one when visible), "starting", "waiting" (status channel),
  // "redeeming" (token endpoint), "signed-in", "denied", "stopped" (a button restarts).
  let phase = "need-flow";
  let flow = null; // {deviceCode, userCode, interval, expiresAt, status}
  let watching = false; // a status loop runs for `flow`
  let controller = null; // aborts that loop's long-poll
  let ticking = null; // the countdown's timer
  let tokens = null;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // --- DPoP (RFC 9449) -----------------------------------------------------------------------
  let keyPair = null; // one per page: the device code and its tokens share it
  let publicJwk = null;
  let dpopNonce = null; // the server's latest DPoP-Nonce, if it asks for nonces

  const b64url = (bytes) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes)))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
  const b64urlText = (text) => b64url(new TextEncoder().encode(text));

  async function dpopKey() {
    if (!window.crypto || !crypto.subtle) return null; // not a secure context: bearer
    if (!keyPair) {
      // extractable=false: the private key never leaves WebCrypto (the public one always can).
      keyPair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
        "sign",
        "verify",
      ]);
      const jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
      publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
    }
    return keyPair;
  }

  // One fresh proof for one request (RFC 9449 §4.2); ES256 signatures from WebCrypto are
  // already r||s, the JWS form.
  async function proof(method, path, accessToken) {
    const pair = await dpopKey();
    if (!pair) return null;
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: publicJwk };
    const claims = {
      jti: b64url(crypto.getRandomValues(new Uint8Array(16))),
      htm: method,
      htu: cfg.issuer + new URL(path, location.href).pathname,
      iat: Math.floor(Date.now() / 1000),
    };
    if (dpopNonce) claims.nonce = dpopNonce;
    if (accessToken) {
      claims.ath = b64url(
        await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken)),
      );
    }
    const input = b64urlText(JSON.stringify(header)) + "." + b64urlText(JSON.stringify(claims));
    const signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      pair.privateKey,
      new TextEncoder().encode(input),
    );
    return input + "." + b64url(signature);
  }

  // Keeps the server's nonce; true if it asked for one and the request should go again.
  async function wantsNonce(response) {
    const nonce = response.headers.get("DPoP-Nonce");
    if (nonce) dpopNonce = nonce;
    if (!nonce || response.ok) return false;
    const challenge = response.headers.get("WWW-Authenticate") || "";
    if (challenge.includes('error="use_dpop_nonce"')) return true;
    const body = await readJson(response.clone());
    return body.error === "use_dpop_nonce";
  }

  function post(url, params, signal) {
    return fetch(url, {
      method: "POST",
      body: new URLSearchParams(params),
      credentials: "omit", // the OAuth endpoints take no cookies
      cache: "no-store",
      signal,
    });
  }

  // A POST that binds to this page's key: the device authorization and the token polls.
  async function postWithProof(url, params) {
    for (let tries = 0; ; tries += 1) {
      const dpop = await proof("POST", url);
      const response = await fetch(url, {
        method: "POST",
        body: new URLSearchParams(params),
        headers: dpop ? { DPoP: dpop } : {},
        credentials: "omit",
        cache: "no-store",
      });
      if (tries > 0 || !(await wantsNonce(response))) return response;
    }
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (e) {
      return {};
    }
  }

  function say(text, more, number) {
    title.textContent = text;
    detail.textContent = more || "";
    // Number matching: the phone must pick this number before it can approve.
    matchNumber.hidden = number === undefined || number === null;
    matchNumber.textContent = matchNumber.hidden ? "" : String(number);
  }

  function button(label) {
    retry.textContent = label;
    retry.hidden = false;
  }

  function clientParams(extra) {
    return Object.assign({ client_id: cfg.clientId }, extra);
  }

  // No answer (null), a 5xx or a 429: the server or what it depends on is failing for now.
  function temporary(response) {
    return !response || response.status >= 500 || response.status === 429;
  }

  // How long to wait before the next try, in ms: the backoff, or Retry-After if longer
  // (RFC 9110 §10.2.3: seconds or an HTTP-date), never more than a minute.
  function retryDelay(response, backoffSeconds) {
    const header = response ? (response.headers.get("Retry-After") || "").trim() : "";
    let seconds = 0;
    if (/^\d+$/.test(header)) seconds = Number(header);
    else if (header && !Number.isNaN(Date.parse(header))) {
      seconds = (Date.parse(header) - Date.now()) / 1000;
    }
    return Math.min(Math.max(backoffSeconds, seconds), MAX_BACKOFF_SECONDS) * 1000;
  }

  function unreachable() {
    say(t("unreachable"), t("keeps_trying"));
  }

  // --- A new device authorization ------------------------------------------------------------
  async function start() {
    phase = "need-flow";
    flow = null;
    stopWatching();
    if (document.hidden) return; // made when the tab is shown (see visibilitychange)
    phase = "starting";
    retry.hidden = true;
    signOut.hidden = true;
    qrFrame.classList.remove("stale", "scanned");
    say(t("getting_code"));
    // This page shows the status channel's number: ask for number matching (the phone must
    // pick the number shown here before it can approve).
    // It also redraws its QR code from the status channel's scan tokens (rotating_qr), so a
    // photo of it, or a copy sent to someone, is stale within a minute.
    const params = clientParams(
      Object.assign(
        { number_matching: "true", rotating_qr: "true" },
        cfg.scope ? { scope: cfg.scope } : {},
      ),
    );
    let response;
    let body;
    let backoff = 1;
    for (let tries = 1; ; tries += 1) {
      try {
        response = await postWithProof(cfg.deviceAuthorizationUrl, params);
        body = await readJson(response);
      } catch (e) {
        response = null;
      }
      if (!temporary(response)) break;
      if (tries >= MAX_START_TRIES) {
        return fail(t("cannot_reach"));
      }
      unreachable();
      backoff = Math.min(backoff * 2, MAX_BACKOFF_SECONDS);
      await sleep(retryDelay(response, backoff));
      if (phase !== "starting") return; // a button or the tab started over meanwhile
      if (document.hidden) {
        phase = "need-flow"; // asked again when the tab is shown
        return;
      }
    }
    if (!response.ok) return fail(told(body.error_description, "no_code"));
    flow = {
      deviceCode: body.device_code,
      userCode: body.user_code,
      interval: Math.max(Number(body.interval) || 5, 1),
      expiresAt: Date.now() + Number(body.expires_in) * 1000,
      status: "pending",
      qrToken: null, // the QR code is drawn once the status channel gives its first token
      qrRefreshIn: 0,
    };
    qr.removeAttribute("src");
    qr.alt = t("qr_alt", { code: flow.userCode });
    userCode.textContent = flow.userCode;
    qrFrame.hidden = false;
    codeBox.hidden = false;
    phase = "waiting";
    show(flow, { status: "pending" });
    startCountdown();
    resume();
  }

  // An expired code says so, and a new one comes when the user asks (as WeChat's QR login
  // does): a code nobody is looking at is never replaced behind their back.
  function expired() {
    flow = null;
    stopWatching();
    stopCountdown();
    phase = "stopped";
    qrFrame.classList.remove("scanned");
    qrFrame.classList.add("stale");
    say(t("expired"), t("expired_new"));
    button(t("new_code"));
  }

  // --- The countdown of the code's lifetime ----------------------------------------------------
  function stopCountdown() {
    if (ticking) clearInterval(ticking);
    ticking = null;
    countdown.hidden = true;
  }

  function tick() {
    if (!flow || phase !== "waiting") return stopCountdown();
    // From the expiry time, not by counting ticks: a throttled timer never makes it drift.
    const left = Math.max(Math.ceil((flow.expiresAt - Date.now()) / 1000), 0);
    const time = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    countdown.textContent = t("expires_in", { time });
    countdown.hidden = false;
    if (left === 0) expired();
  }

  function startCountdown() {
    stopCountdown();
    tick();
    ticking = setInterval(tick, 1000);
  }

  // --- The status channel --------------------------------------------------------------------
  // A rotating QR code: each scan token is good for about 30 s; the long-poll comes back in
  // time for the next one.
  function showQr(mine, token, refreshIn) {
    mine.qrRefreshIn = Math.max(Number(refreshIn) || 0, 1);
    if (token === mine.qrToken) return;
    mine.qrToken = token;
    const url = cfg.qrUrl.replace("USERCODE", encodeURIComponent(mine.userCode));
    qr.src = url + "?t=" + encodeURIComponent(token);
  }

  function show(mine, body) {
    if (body.qr_token) showQr(mine, body.qr_token, body.qr_token_expires_in);
    mine.status = body.status;
    // Scanned: the QR code dims, so nobody else scans it meanwhile (WeChat does the same).
    qrFrame.classList.toggle("scanned", body.status === "scanned");
    if (body.status === "pending") {
      say(t("scan"), t("scan_detail"));
    } else if (body.status === "scanned") {
      const scanner = body.scanner || {};
      const number = body.match_number;
      // One whole sentence per case: "entered_by_pick", "scanned", ...
      const web = scanner.platform === "web";
      const key =
        (web ? "entered" : "scanned") + (scanner.name ? "_by" : "") + (number ? "_pick" : "");
      say(t(web ? "confirm_browser" : "confirm_phone"), t(key, { name: scanner.name }), number);
    } else if (body.status === "approved") {
      phase = "redeeming";
      stopWatching();
      say(t("approved"), t("signing_in"));
      redeem(mine);
    } else if (body.status === "denied") {
      denied();
    } else if (body.status === "expired") {
      expired();
    }
  }

  function stopWatching() {
    if (controller) controller.abort();
  }

  // Long-polls while the tab is visible and the flow waits; a hidden tab ends the loop.
  async function watch(mine) {
    watching = true;
    let backoff = mine.interval;
    try {
      while (flow === mine && phase === "waiting" && !document.hidden) {
        controller = new AbortController();
        const began = Date.now();
        let response = null;
        let body;
        try {
          response = await post(
            cfg.statusUrl,
            clientParams({
              device_code: mine.deviceCode,
              // No token yet: ask without waiting, so the QR code is drawn at once.
              status: mine.qrToken ? mine.status : "",
              wait: String(
                mine.qrToken && mine.status === "pending"
                  ? Math.min(LONG_POLL_SECONDS, mine.qrRefreshIn)
                  : LONG_POLL_SECONDS,
              ),
            }),
            controller.signal,
          );
          body = await readJson(response);
        } catch (e) {
          if (e.name === "AbortError") continue; // hidden, or the flow changed: re-check
          response = null; // the network failed
        }
        if (temporary(response)) {
          if (flow !== mine || phase !== "waiting") return;
          if (Date.now() >= mine.expiresAt) return expired();
          unreachable();
          backoff = Math.min(backoff * 2, MAX_BACKOFF_SECONDS);
          await sleep(retryDelay(response, backoff));
          mine.status = ""; // then ask where the flow stands, and show it again
          continue;
        }
        backoff = mine.interval;
        if (!response.ok) {
          if (body.error !== "invalid_grant") {
            return fail(told(body.error_description, "refused"));
          }
          body = { status: "expired" }; // the flow is gone from the server
        }
        if (flow !== mine || phase !== "waiting") return;
        // Answered at once without news (the server holds few long-polls): do not spin.
        const news = body.status !== mine.status || (body.qr_token || null) !== mine.qrToken;
        if (!news && Date.now() - began < 1000) {
          await sleep(mine.interval * 1000);
          if (flow !== mine || phase !== "waiting") return;
        }
        show(mine, body);
      }
    } finally {
      watching = false;
      controller = null;
    }
  }

  // Whatever the visible page should be doing now and is not.
  function resume() {
    if (document.hidden) return;
    if (phase === "need-flow") {
      start();
    } else if (phase === "waiting" && flow && !watching) {
      if (Date.now() >= flow.expiresAt) expired();
      else watch(flow);
    }
  }

  // --- The token endpoint (RFC 8628 §3.4-3.5) ------------------------------------------------
  async function redeem(mine) {
    let interval = mine.interval;
    let backoff = interval;
    let failing = false;
    for (;;) {
      let response;
      let body;
      try {
        response = await postWithProof(
          cfg.tokenUrl,
          clientParams({ grant_type: DEVICE_CODE_GRANT, device_code: mine.deviceCode }),
        );
        body = await readJson(response);
      } catch (e) {
        response = null;
      }
      if (flow !== mine) return;
      let wait = interval * 1000;
      if (temporary(response)) {
        // §3.5: poll less often while the server fails, never sooner than Retry-After.
        failing = true;
        unreachable();
        backoff = Math.min(backoff * 2, MAX_BACKOFF_SECONDS);
        wait = retryDelay(response, backoff);
      } else {
        if (response.ok) return signedIn(body);
        const error = body.error;
        if (error === "access_denied") return denied(body.error_description);
        if (error === "expired_token") return expired();
        if (error === "slow_down") interval += 5;
        else if (error !== "authorization_pending") {
          return fail(told(body.error_description, "failed"));
        }
        if (failing) say(t("approved"), t("signing_in"));
        failing = false;
        backoff = interval;
        wait = interval * 1000;
      }
      if (Date.now() >= mine.expiresAt) return expired();
      await sleep(Math.min(wait, Math.max(mine.expiresAt - Date.now(), 0)));
      if (flow !== mine) return;
    }
  }

  async function signedIn(issued) {
    tokens = issued;
    flow = null;
    phase = "signed-in";
    qrFrame.hidden = true;
    codeBox.hidden = true;
    let name = "";
    try {
      let response;
      for (let tries = 0; tries < 2; tries += 1) {
        const headers = { Authorization: tokens.token_type + " " + tokens.access_token };
        if (tokens.token_type === "DPoP") {
          headers.DPoP = await proof("GET", cfg.meUrl, tokens.access_token);
        }
        response = await fetch(cfg.meUrl, { headers, credentials: "omit", cache: "no-store" });
        if (!(await wantsNonce(response))) break;
      }
      const me = await readJson(response);
      if (response.ok) name = me.name || me.username || "";
    } catch (e) {
      name = "";
    }
    if (phase !== "signed-in") return;
    say(name ? t("signed_in_as", { name }) : t("signed_in"), t("signed_in_here"));
    signOut.hidden = false;
  }

  function denied(why) {
    flow = null;
    stopWatching();
    stopCountdown(); // no "Expires in" under an answer that ended the code
    phase = "denied";
    qrFrame.hidden = true;
    codeBox.hidden = true;
    say(t("denied"), told(why, "declined"));
    button(t("try_again"));
  }

  function fail(why) {
    flow = null;
    stopWatching();
    stopCountdown(); // no "Expires in" under an answer that ended the code
    phase = "stopped";
    qrFrame.classList.add("stale");
    say(t("went_wrong"), why);
    button(t("try_again"));
  }

  // --- Buttons and visibility ----------------------------------------------------------------
  retry.addEventListener("click", () => {
    start();
  });

  signOut.addEventListener("click", async () => {
    const refreshToken = tokens && tokens.refresh_token;
    tokens = null; // forgotten whatever the server answers
    signOut.hidden = true;
    if (refreshToken) {
      try {
        // RFC 7009: the refresh token takes its access tokens with it.
        const params = { token: refreshToken, token_type_hint: "refresh_token" };
        await post(cfg.revokeUrl, clientParams(params));
      } catch (e) {
        // Forgotten here; it expires on its own.
      }
    }
    phase = "stopped";
    say(t("signed_out"), "");
    button(t("sign_in_again"));
  });

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      stopWatching(); // no long-poll held for a tab nobody looks at
    } else {
      resume();
    }
  });

  resume();
})();
