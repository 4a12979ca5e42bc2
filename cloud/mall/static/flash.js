/* Flash sales: live countdowns (against the server's clock), the units left from the public GET /flash-sales/{id},
   and buying through the public POST /flash-sales/{id}/orders with a flash pass (POST /auth/passes).
   One purchase attempt has ONE Idempotency-Key, made when the customer presses buy and kept in sessionStorage until
   the gate gives a final answer: every retry (429 throttled after Retry-After, a lost answer, a lapsed pass, or the
   customer pressing buy again) sends the same key, so the attempt can never buy twice. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const POLL_MS = 3000, RETRIES_MAX = 30, NET_RETRY_S = 2, ORDER_READS_MAX = 15;
  const holder = document.querySelector("[data-now]");
  const skew = holder ? Number(holder.dataset.now) - Date.now() : 0;  // the server's clock, as the gate uses it
  function now() { return Date.now() + skew; }
  function two(n) { return String(n).padStart(2, "0"); }
  function left(ms) {
    const s = Math.max(0, Math.floor(ms / 1000)), h = Math.floor(s / 3600);
    return (h ? h + ":" : "") + two(Math.floor((s % 3600) / 60)) + ":" + two(s % 60);
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function tickList() {
    document.querySelectorAll("time.countdown[data-to]").forEach(function (t) {
      t.textContent = left(Number(t.dataset.to) - now());
    });
  }
  tickList(); setInterval(tickList, 1000);

  const el = document.getElementById("sale");
  if (!el) return;
  const sale = el.dataset.sale, starts = Number(el.dataset.starts), ends = Number(el.dataset.ends);
  const KEY = "flash_attempt_" + sale, WON = "flash_won_" + sale, PASS = "flash_pass";
  const buy = document.getElementById("buy"), box = document.getElementById("flash-state");
  const FINAL = ["won", "sold_out", "over_limit", "ended"];
  let state = el.dataset.phase, busy = false;

  function say(kind, text) {
    state = kind; el.dataset.phase = kind; box.dataset.state = kind; box.textContent = text || "";
    box.classList.toggle("error", ["sold_out", "over_limit", "error", "ended"].includes(kind));
    buy.disabled = busy || kind !== "running" && kind !== "error" && kind !== "throttled";
  }

  function tick() {
    const t = now(), label = document.getElementById("count-label"), count = document.getElementById("countdown");
    if (t < starts) {
      label.textContent = W.starts_in; count.textContent = left(starts - t);
      if (state === "running") say("not_started", W.flash_not_started);
    } else if (t < ends) {
      label.textContent = W.ends_in; count.textContent = left(ends - t);
      if (state === "not_started") say("running", "");
    } else {
      label.textContent = W.ends_in; count.textContent = left(0);
      if (state !== "won" && state !== "sold_out") say("ended", W.flash_ended);
    }
  }

  function showRemaining(remaining, quantity) {
    const r = document.getElementById("remaining");
    r.dataset.remaining = remaining; r.textContent = W.remaining + " " + remaining;
    document.getElementById("meter-fill").style.width = (quantity ? Math.round(100 * remaining / quantity) : 0) + "%";
    document.querySelector(".meter").setAttribute("aria-valuenow", String(remaining));
  }
  function soldOut() { say("sold_out", W.flash_sold_out + " · " + W.flash_sold_out_note); }

  async function poll() {
    try {
      const s = await M.api("GET", "/flash-sales/" + encodeURIComponent(sale));
      showRemaining(s.remaining, s.quantity);
      if (s.remaining <= 0 && !FINAL.includes(state) && !busy) soldOut();
    } catch (e) { /* the next poll tries again; the page keeps what it showed */ }
  }

  async function flashPass() {
    try {
      const held = JSON.parse(sessionStorage.getItem(PASS) || "null");
      if (held && held.member === M.session.member() && Date.parse(held.expires_at) - Date.now() > 10000) return held.pass;
    } catch (e) { /* a new one below */ }
    const p = await M.api("POST", "/auth/passes");
    sessionStorage.setItem(PASS, JSON.stringify({pass: p.pass, expires_at: p.expires_at, member: M.session.member()}));
    return p.pass;
  }

  async function showWon(orderId) {
    say("won", "");
    buy.hidden = true;
    document.getElementById("won").hidden = false;
    document.getElementById("order-link").href = "/mall/orders/" + encodeURIComponent(orderId);
    for (let i = 0; i < ORDER_READS_MAX; i++) {  // the order's row is written by the gate's group commit, just after
      try {
        const o = await M.api("GET", "/orders/" + encodeURIComponent(orderId));
        if (o.expires_at) {
          const t = document.getElementById("pay-by");
          t.setAttribute("datetime", o.expires_at);
          t.textContent = new Date(o.expires_at).toLocaleString(document.documentElement.lang);
          return;
        }
      } catch (e) { /* not there yet */ }
      await sleep(1000);
    }
  }

  async function waitRetry(seconds, words) {
    for (let s = seconds; s > 0; s--) { say("throttled", words.replace("{s}", String(s))); await sleep(1000); }
    say("throttled", W.flash_retrying);
  }

  function finalRefusal(status, problem) {
    sessionStorage.removeItem(KEY);  // the gate's final word: the next attempt is a new one
    const type = (problem && problem.type) || "";
    if (type.endsWith("/sold-out")) soldOut();
    else if (type.endsWith("/over-limit")) say("over_limit", W.flash_over_limit);
    else if (type.endsWith("/not-started")) say("not_started", W.flash_not_started);
    else if (type.endsWith("/ended")) say("ended", W.flash_ended);
    else say("error", M.sentence(status, problem));  // in the page's language (mall.js)
  }

  async function attempt() {
    if (!M.session.token()) { location.href = "/mall/signin?next=" + encodeURIComponent(location.pathname); return; }
    let key = sessionStorage.getItem(KEY);
    if (!key) { key = M.uuid(); sessionStorage.setItem(KEY, key); }
    busy = true; buy.disabled = true; buy.textContent = W.flash_buying;
    let renewed = false;
    try {
      for (let tries = 0; tries < RETRIES_MAX; tries++) {
        let r = null, body = null;
        try {
          const pass = await flashPass();
          r = await fetch("/flash-sales/" + encodeURIComponent(sale) + "/orders", {method: "POST",
            headers: {"Authorization": "Bearer " + pass, "Idempotency-Key": key, "Content-Type": "application/json",
                      "Accept": "application/json"}, body: JSON.stringify({qty: 1})});
          body = await r.json().catch(function () { return null; });
        } catch (e) {
          if (e && e.status === 401) { M.session.clear(); say("error", W.sign_in_needed); return; }
          await waitRetry(NET_RETRY_S, W.flash_retrying); continue;  // the answer was lost: the same key again
        }
        if (r.status === 201) {
          sessionStorage.removeItem(KEY);
          localStorage.setItem(WON, JSON.stringify({member: M.session.member(), order_id: body.order_id}));
          await showWon(body.order_id);
          return;
        }
        if (r.status === 401 && !renewed) { sessionStorage.removeItem(PASS); renewed = true; continue; }
        if (r.status === 429 || r.status === 503) {
          const after = parseInt(r.headers.get("Retry-After") || "1", 10);
          await waitRetry(after > 0 && after < 60 ? after : 1, W.flash_throttled);
          continue;
        }
        finalRefusal(r.status, body);
        return;
      }
      say("error", W.error_generic);  // still throttled: the key is kept, pressing buy again retries the same attempt
    } finally {
      busy = false; buy.textContent = W.flash_buy;
      if (state !== "won") buy.disabled = !["running", "error", "throttled"].includes(state);
    }
  }

  buy.addEventListener("click", attempt);
  try {
    const won = JSON.parse(localStorage.getItem(WON) || "null");
    if (won && won.member === M.session.member()) showWon(won.order_id);
  } catch (e) { /* nothing won here */ }
  if (!M.session.token() && state === "running") buy.textContent = buy.dataset.signIn;
  tick(); setInterval(tick, 1000);
  poll(); setInterval(poll, POLL_MS);
})();
