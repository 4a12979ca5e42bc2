/* The mall's shared helpers: the customer's session (the public API's token), calls to the public JSON API with
   problem+json turned into a sentence, the cart kept in localStorage, the chosen store, and small UI bits.
   Every page script uses window.Mall; nothing here knows a page. */
(function () {
  "use strict";
  const W = JSON.parse(document.getElementById("words").textContent);
  const TOKEN = "mall_token", MEMBER = "mall_member", CART = "mall_cart", ADDRESS = "mall_address";

  function cookie(name, value, maxAge) {
    document.cookie = name + "=" + encodeURIComponent(value) + "; path=/mall; max-age=" + maxAge + "; samesite=lax";
  }
  function readCookie(name) {
    const hit = document.cookie.split("; ").find(function (c) { return c.startsWith(name + "="); });
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  }

  const session = {
    token: function () { return localStorage.getItem(TOKEN); },
    member: function () { return localStorage.getItem(MEMBER); },
    save: function (token, member) {
      localStorage.setItem(TOKEN, token); localStorage.setItem(MEMBER, member);
      cookie("mall_session", token, 30 * 24 * 3600);  // lets the server show this member's own prices
    },
    clear: function () {
      localStorage.removeItem(TOKEN); localStorage.removeItem(MEMBER); cookie("mall_session", "", 0);
    },
  };

  /* A problem+json answer as an Error whose message is a sentence: the API's `detail` (it says what was wrong). */
  async function api(method, path, body, headers) {
    const h = Object.assign({"Accept": "application/json"}, headers || {});
    if (session.token()) h["Authorization"] = "Bearer " + session.token();
    if (body !== undefined) h["Content-Type"] = "application/json";
    let r;
    try {
      r = await fetch(path, {method: method, headers: h, body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (e) {
      throw new Error(W.error_generic);
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) {
      if (r.status === 401) session.clear();
      const err = new Error(r.status === 401 ? W.sign_in_needed : sentence(r.status, data));
      err.status = r.status; err.problem = data;
      throw err;
    }
    return data;
  }

  /* A write that must happen once: one Idempotency-Key per attempt `name`, made on the first press, reused by a retry
     (a lost answer, 429, 5xx) and dropped once the API gave its final answer. */
  async function once(name, path, body) {
    let key = sessionStorage.getItem(name);
    if (!key) { key = uuid(); sessionStorage.setItem(name, key); }
    try {
      const answer = await api("POST", path, body, {"Idempotency-Key": key});
      sessionStorage.removeItem(name);
      return answer;
    } catch (e) {
      if (e.status && e.status < 500 && e.status !== 429) sessionStorage.removeItem(name);
      throw e;
    }
  }

  /* A problem as a sentence in the page's language (cloud/mall/problems.py says the rules; its tables come with the
     page): a known sentence of the API's detail, else the problem type's word (an English page adds the detail,
     which is English), else the detail as it came; never the raw body. */
  const PROBLEMS = JSON.parse(document.getElementById("problems").textContent);
  const SENTENCES = PROBLEMS.sentences.map(function (p) { return [p[0], new RegExp(p[1])]; });
  function sentence(status, problem) {
    const detail = problem && typeof problem.detail === "string" ? problem.detail : "";
    const known = detail && SENTENCES.find(function (p) { return p[1].test(detail); });
    if (known) return W[known[0]];
    const key = problem && PROBLEMS.types[problem.type] || (status === 422 ? "problem_invalid" : null);
    if (key) return detail && document.body.dataset.lang === "en" ? W[key] + ": " + detail : W[key];
    return detail || W.error_generic;
  }

  const cart = {
    lines: function () {
      try { const v = JSON.parse(localStorage.getItem(CART) || "[]"); return Array.isArray(v) ? v : []; }
      catch (e) { return []; }
    },
    save: function (lines) { localStorage.setItem(CART, JSON.stringify(lines)); badge(); },
    /* qty: pieces, or grams of goods sold by weight (the API's unit) */
    /* `weighed`: sold by the kg (qty in grams); kept with the line so the cart steps by weight */
    set: function (sku, qty, weighed) {
      const lines = cart.lines(), at = lines.findIndex(function (l) { return l.sku === sku; });
      const w = weighed === undefined ? (at >= 0 && !!lines[at].w) : !!weighed;
      if (at >= 0 && qty > 0) lines[at] = Object.assign(lines[at], {qty: qty, w: w});
      else if (at >= 0) lines.splice(at, 1);
      else if (qty > 0) lines.push({sku: sku, qty: qty, w: w});
      cart.save(lines);
    },
    add: function (sku, qty, weighed) {
      const now = cart.lines().find(function (l) { return l.sku === sku; });
      cart.set(sku, (now ? now.qty : 0) + qty, weighed);
    },
    /* the lines as the API's items: {sku, qty} */
    items: function () { return cart.lines().map(function (l) { return {sku: l.sku, qty: l.qty}; }); },
    clear: function () { cart.save([]); },
  };

  const place = {
    store: function () { return readCookie("mall_store"); },
    chooseStore: function (id) { cookie("mall_store", id, 30 * 24 * 3600); },
    address: function () { try { return JSON.parse(localStorage.getItem(ADDRESS) || "null"); } catch (e) { return null; } },
    saveAddress: function (a) { localStorage.setItem(ADDRESS, JSON.stringify(a)); },
  };

  function badge() {
    const el = document.getElementById("cart-count");
    if (!el) return;
    const n = cart.lines().length;
    el.textContent = n ? String(n) : "";
  }

  function flash(text, isError) {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text; el.hidden = !text; el.classList.toggle("error", !!isError);
  }

  function yuan(fen) {
    const sign = fen < 0 ? "-" : ""; fen = Math.abs(fen);
    return sign + Math.floor(fen / 100) + "." + String(fen % 100).padStart(2, "0");
  }
  function kg(g) { return (g / 1000).toFixed(3); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(16) + Math.random().toString(16).slice(2);
  }

  function navMe() {
    const me = document.getElementById("nav-me");
    if (me && session.token()) { me.textContent = me.dataset.signedIn; me.href = "/mall/me"; }  // the member centre
  }

  window.Mall = {words: W, api: api, session: session, cart: cart, place: place, flash: flash, yuan: yuan, kg: kg,
                 esc: esc, uuid: uuid, cookie: cookie, readCookie: readCookie, sentence: sentence,
                 once: once};
  badge(); navMe();
})();
