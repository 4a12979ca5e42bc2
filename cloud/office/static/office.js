/* The back office's shared script: the operator's session, calls to the operator JSON API, forms that show what
   went wrong as a sentence. Every page's own script uses window.Office; nothing here is page-specific. */
(function () {
  "use strict";
  const TOKEN = "office_token", COOKIE = "office_session";
  const words = JSON.parse(document.getElementById("words").textContent);

  function readCookie(name) {
    const hit = document.cookie.split("; ").find(function (c) { return c.startsWith(name + "="); });
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
  }
  function cookie(name, value, maxAge) {
    // a browser-session cookie (no max-age) unless clearing; Strict: never sent from another site's page
    document.cookie = name + "=" + encodeURIComponent(value) + "; path=/office; samesite=strict" +
      (maxAge === undefined ? "" : "; max-age=" + maxAge);
  }
  const session = {
    token: function () { return sessionStorage.getItem(TOKEN) || readCookie(COOKIE); },
    save: function (token) { sessionStorage.setItem(TOKEN, token); cookie(COOKIE, token); },
    clear: function () { sessionStorage.removeItem(TOKEN); cookie(COOKIE, "", 0); },
  };

  class OfficeError extends Error {
    constructor(message, status, problem) { super(message); this.status = status; this.problem = problem || null; }
  }

  function signInAgain() {
    session.clear();
    location.href = "/office/signin?next=" + encodeURIComponent(location.pathname + location.search);
  }

  /* One call to the operator API: JSON in, JSON (or text) out; a problem answer becomes an OfficeError whose message
     is a sentence (the problem's own words for the operator's language when the office has them, else its detail). */
  async function api(method, path, body, headers) {
    const h = Object.assign({"Accept": "application/json"}, headers || {});
    const token = session.token();
    if (token) h["Authorization"] = "Bearer " + token;
    const init = {method: method, headers: h};
    if (body !== undefined && body !== null) {
      if (typeof body === "string" || body instanceof Blob || body instanceof FormData) init.body = body;
      else { init.body = JSON.stringify(body); h["Content-Type"] = "application/json"; }
    }
    let r;
    try { r = await fetch(path, init); }
    catch (e) { throw new OfficeError(words["office.offline"], 0, null); }
    if (r.status === 401 && path !== "/operator/sessions") { signInAgain(); throw new OfficeError(words["office.signed_out"], 401, null); }
    const kind = r.headers.get("content-type") || "";
    const data = kind.includes("json") ? await r.json().catch(function () { return null; }) : await r.text();
    if (!r.ok) {
      const p = (data && typeof data === "object") ? data : {};
      const type = typeof p.type === "string" && p.type.startsWith("/problems/") ? p.type.slice(10) : "";
      const known = words["problem." + (p.code || type)] || null;
      const detail = p.detail || p.title || (words["office.failed"] + " (HTTP " + r.status + ")");
      throw new OfficeError(known ? known + "（" + detail + "）" : detail, r.status, p);
    }
    return data;
  }

  function say(text, isError) {
    const el = document.getElementById("flash");
    el.textContent = text; el.hidden = !text; el.classList.toggle("error", !!isError);
  }

  /* A form that calls the API: opts.method, opts.path (string or fn(formData)), opts.body(formData) -> object,
     opts.done(answer). What went wrong is said in the form's [role=alert]; the button is disabled while it runs. */
  function form(el, opts) {
    const alert = el.querySelector("[role=alert]");
    el.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const button = el.querySelector("[type=submit]");
      const data = new FormData(el);
      if (alert) { alert.textContent = ""; alert.classList.remove("ok"); }
      if (button) button.disabled = true;
      try {
        const path = typeof opts.path === "function" ? opts.path(data) : opts.path;
        const answer = await api(opts.method || "POST", path, opts.body ? opts.body(data) : Object.fromEntries(data));
        if (opts.done) await opts.done(answer, data);
      } catch (e) {
        if (alert) alert.textContent = e.message; else say(e.message, true);
      } finally {
        if (button) button.disabled = false;
      }
    });
  }

  /* Yuan as typed ("12.5") -> integer fen (1250); null when it is not an amount with at most two decimals. */
  function fen(text) {
    const m = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(String(text));
    return m ? parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10) : null;
  }

  const out = document.getElementById("sign-out");
  if (out) out.addEventListener("click", async function () {
    try { await api("DELETE", "/operator/sessions"); } catch (e) { /* signed out here either way */ }
    session.clear(); location.href = "/office/signin";
  });

  window.Office = {api: api, form: form, say: say, fen: fen, words: words, session: session, OfficeError: OfficeError};
})();
