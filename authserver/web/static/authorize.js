// The code flow's sign-in page (/authorize): the QR login of one authorization request.
//
// The page already shows the QR code and the user code; this script follows the status channel
// (POST /authorize/status, a long-poll like the PC login page's, keyed by the request and the
// HttpOnly cookie that holds its device code) and, once the phone approved or denied, submits
// the page's form: the server redeems the sign-in once and redirects back to the website with
// a code (or with error=access_denied). Without this script the person presses the button.
// A hidden tab stops long-polling until it is shown again; a server that fails or cannot be
// reached is retried with a doubling wait, never sooner than Retry-After.
// Every word it shows comes from the page (<script type="application/json" id="page-text">),
// in the page's language.
"use strict";

(() => {
  const root = document.getElementById("authorize");
  if (!root) return;
  const cfg = root.dataset;
  const words = JSON.parse(document.getElementById("page-text").textContent);
  // The page's words, with %(name)s filled in.
  const t = (key, values) =>
    words[key].replace(/%\((\w+)\)s/g, (all, name) => String((values || {})[name]));
  const LONG_POLL_SECONDS = 25; // the server caps it (AUTHSERVER_STATUS_MAX_WAIT)
  const MAX_BACKOFF_SECONDS = 60;

  const byId = (id) => document.getElementById(id);
  const title = byId("status-title");
  const detail = byId("status-detail");
  const matchNumber = byId("match-number");
  const form = byId("complete");
  const button = byId("continue");
  const retry = byId("retry");
  const qrFrame = byId("qr-frame");

  const interval = Math.max(Number(cfg.interval) || 5, 1);
  const expiresAt = Date.now() + Number(cfg.expiresIn) * 1000;
  let status = "pending";
  let done = false;
  let watching = false;
  let controller = null;

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function say(text, more, number) {
    title.textContent = text;
    detail.textContent = more || "";
    // Number matching: the phone must pick this number before it can approve.
    matchNumber.hidden = number === undefined || number === null;
    matchNumber.textContent = matchNumber.hidden ? "" : String(number);
  }

  function retryDelay(response, backoffSeconds) {
    const header = response ? (response.headers.get("Retry-After") || "").trim() : "";
    const seconds = /^\d+$/.test(header) ? Number(header) : 0;
    return Math.min(Math.max(backoffSeconds, seconds), MAX_BACKOFF_SECONDS) * 1000;
  }

  // The phone decided: the server redeems the sign-in and redirects (once; the button too).
  function finish(text) {
    if (done) return;
    done = true;
    if (controller) controller.abort();
    button.disabled = true;
    say(text, t("taking_back"));
    form.submit();
  }

  function expired() {
    done = true;
    if (controller) controller.abort();
    qrFrame.classList.add("stale");
    button.hidden = true;
    say(t("expired"), t(retry ? "expired_retry" : "expired_back"));
    if (retry) retry.hidden = false;
  }

  function show(body) {
    status = body.status;
    if (status === "pending") {
      say(t("scan"), t("scan_detail"));
    } else if (status === "scanned") {
      const scanner = body.scanner || {};
      const number = body.match_number;
      // One whole sentence per case: "entered_by_pick", "scanned", ...
      const web = scanner.platform === "web";
      const key =
        (web ? "entered" : "scanned") + (scanner.name ? "_by" : "") + (number ? "_pick" : "");
      say(t(web ? "confirm_browser" : "confirm_phone"), t(key, { name: scanner.name }), number);
    } else if (status === "approved") {
      finish(t("approved"));
    } else if (status === "denied") {
      finish(t("denied"));
    } else if (status === "expired") {
      expired();
    }
  }

  async function watch() {
    if (watching) return;
    watching = true;
    let backoff = interval;
    try {
      while (!done && !document.hidden) {
        if (Date.now() >= expiresAt) return expired();
        controller = new AbortController();
        const began = Date.now();
        let response = null;
        let body = {};
        try {
          response = await fetch(cfg.statusUrl, {
            method: "POST",
            body: new URLSearchParams({
              authorization: cfg.authorization,
              status: status,
              wait: String(LONG_POLL_SECONDS),
            }),
            credentials: "same-origin", // the request's cookie says which sign-in this is
            cache: "no-store",
            signal: controller.signal,
          });
          body = await response.json().catch(() => ({}));
        } catch (e) {
          if (e.name === "AbortError") continue; // hidden, or finished: the loop re-checks
          response = null;
        }
        if (done) return;
        if (!response || response.status >= 500 || response.status === 429) {
          say(t("unreachable"), t("keeps_trying"));
          backoff = Math.min(backoff * 2, MAX_BACKOFF_SECONDS);
          await sleep(retryDelay(response, backoff));
          status = ""; // then ask where the sign-in stands, and show it again
          continue;
        }
        backoff = interval;
        if (!response.ok) return expired(); // the sign-in is gone from the server
        // Answered at once without news (the server holds few long-polls): do not spin.
        if (body.status === status && Date.now() - began < 1000) await sleep(interval * 1000);
        show(body);
      }
    } finally {
      watching = false;
      controller = null;
    }
  }

  button.hidden = true; // this script continues by itself; the button is for no script
  form.addEventListener("submit", () => {
    done = true;
    button.disabled = true;
  });

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (controller) controller.abort();
    } else if (!done) {
      watch();
    }
  });

  watch();
})();
