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

  /* A problem as a sentence: the mall's own words for the cases it knows (its `type`), then the API's `detail`,
     which names exactly what was wrong; never the raw body. */
  const KNOWN = {"/problems/out-of-stock": "problem_out_of_stock", "/problems/slot": "problem_slot",
                 "/problems/no-store": "problem_no_store", "/problems/coupon": "problem_coupon",
                 "/problems/payment": "problem_payment"};
  function sentence(status, problem) {
    const detail = problem && typeof problem.detail === "string" ? problem.detail : "";
    const key = problem && KNOWN[problem.type] || (status === 422 ? "problem_invalid" : null);
    if (key && W[key]) return detail ? W[key] + (document.documentElement.lang === "en" ? ": " : "：") + detail : W[key];
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
                 esc: esc, uuid: uuid, cookie: cookie, readCookie: readCookie};
  badge(); navMe();
})();
