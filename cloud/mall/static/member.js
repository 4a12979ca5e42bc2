/* The member centre, through the public API with the member's session only: the account (GET /members/{id}),
   top-ups through the simulated wallet (POST /members/{id}/top-ups, then GET .../top-ups/{tid} until the
   provider's signed notification credited it), points offers and their exchange, coupons, orders, after-sales
   requests, the personal-data download and the deletion request. Writes carry an Idempotency-Key made once per
   attempt and reused by a retry. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const TOP_UP_READS_MAX = 120, TOP_UP_READ_MS = 1000, AFTER_SALES_ORDERS_MAX = 10, AFTER_SALES_READ_MS = 3000;
  const HANDED_OVER = ["picked_up", "delivered", "completed", "partially_refunded"];
  const root = document.getElementById("mc");
  if (!root) return;
  const me = M.session.member();
  if (!M.session.token() || !me) {
    root.hidden = true; document.getElementById("mc-signin").hidden = false; return;
  }
  root.hidden = false; document.getElementById("mc-signin").hidden = true;
  const base = "/members/" + encodeURIComponent(me);
  function $(id) { return document.getElementById(id); }
  function say(id, text, isError) { const e = $(id); e.textContent = text || ""; e.classList.toggle("error", !!isError); }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function day(t) { return t ? new Date(t).toLocaleDateString(document.documentElement.lang) : ""; }
  const once = M.once;  // one Idempotency-Key per attempt (mall.js)

  async function account() {
    const a = await M.api("GET", base);
    $("balance").textContent = "¥" + M.yuan(a.stored_value_fen); $("balance").dataset.fen = a.stored_value_fen;
    $("points").textContent = String(a.points); $("points").dataset.points = a.points;
    return a;
  }

  /* top-up: pending until the wallet provider's signed notification credits it */
  $("top-up-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const yuan = Number($("top-up-amount").value);
    if (!(yuan > 0) || Math.round(yuan * 100) !== yuan * 100) { say("top-up-msg", W.mc_amount, true); return; }
    $("top-up").disabled = true; say("top-up-msg", "");
    try {
      const t = await once("top_up_attempt", base + "/top-ups", {amount_fen: Math.round(yuan * 100), method: "wallet_sim"});
      const pending = $("top-up-pending");
      if (t.state !== "done") {
        pending.hidden = false; pending.dataset.topUp = t.top_up_id; pending.dataset.state = t.state;
        if (t.pay && t.pay.prepay_id) pending.dataset.prepay = t.pay.prepay_id;
        if (t.pay && t.pay.code_url) $("top-up-qr").src = "/mall/qr.svg?text=" + encodeURIComponent(t.pay.code_url);
        $("top-up-state").textContent = W.mc_top_up_pending;
      }
      for (let i = 0; i < TOP_UP_READS_MAX; i++) {
        const v = await M.api("GET", base + "/top-ups/" + encodeURIComponent(t.top_up_id));
        pending.dataset.state = v.state;
        if (v.state === "done") {
          pending.hidden = true; say("top-up-msg", W.mc_top_up_done + " ¥" + M.yuan(t.amount_fen || Math.round(yuan * 100)));
          $("top-up-amount").value = "";
          await account();
          return;
        }
        if (v.state === "failed" || v.state === "cancelled" || v.state === "expired") {
          pending.hidden = true; say("top-up-msg", W.error_generic, true); return;
        }
        await sleep(TOP_UP_READ_MS);
      }
    } catch (e) { say("top-up-msg", e.message, true); } finally { $("top-up").disabled = false; }
  });

  async function offers() {
    const list = $("offers");
    try {
      const o = (await M.api("GET", "/points/offers")).offers;
      if (!o.length) { list.innerHTML = "<li>" + M.esc(W.mc_no_offers) + "</li>"; return; }
      list.innerHTML = o.map(function (x) {
        return '<li class="offer" data-offer="' + M.esc(x.offer_id) + '"><span><strong>' + M.esc(x.title || x.offer_id) +
          "</strong><br><small>" + M.esc(W.mc_points_cost.replace("{n}", x.points)) + "</small></span>" +
          '<button type="button" class="exchange" data-offer="' + M.esc(x.offer_id) + '" aria-label="' +
          M.esc(W.mc_exchange + " " + (x.title || x.offer_id)) + '">' + M.esc(W.mc_exchange) + "</button></li>";
      }).join("");
    } catch (e) { list.innerHTML = "<li>" + M.esc(e.message) + "</li>"; }
  }
  $("offers").addEventListener("click", async function (ev) {
    const b = ev.target.closest("button.exchange");
    if (!b) return;
    b.disabled = true; say("offers-msg", "");
    try {
      await once("exchange_" + b.dataset.offer, base + "/points/exchange", {offer_id: b.dataset.offer});
      say("offers-msg", W.mc_exchanged);
      await Promise.all([account(), coupons(), offers()]);
    } catch (e) { say("offers-msg", e.message, true); b.disabled = false; }
  });

  async function coupons() {
    const box = $("coupons");
    try {
      const all = (await M.api("GET", base + "/coupons")).coupons;
      const groups = {valid: [], used: [], expired: []};
      all.forEach(function (c) {
        (c.status === "redeemed" ? groups.used : c.status === "expired" ? groups.expired : groups.valid).push(c);
      });
      box.innerHTML = ["valid", "used", "expired"].map(function (g) {
        return '<h3>' + M.esc(W["coupon_" + g]) + " (" + groups[g].length + ')</h3><ul class="list" data-coupons="' + g + '">' +
          (groups[g].map(function (c) {
            const v = c.value || {};
            const what = v.amount_off_fen ? "-¥" + M.yuan(v.amount_off_fen) : v.percent_off_bp ? W.pct_off.replace("{n}", String(v.percent_off_bp / 100)) : "";
            return '<li class="coupon ' + g + '" data-code="' + M.esc(c.code) + '"><strong>' + M.esc(c.name) + "</strong> " +
              M.esc(what) + (v.min_spend_fen ? " (≥ ¥" + M.yuan(v.min_spend_fen) + ")" : "") +
              "<br><small>" + M.esc(W.coupon_until) + " " + M.esc(day(c.valid_until)) + "</small></li>";
          }).join("") || "<li>" + M.esc(W.mc_none) + "</li>") + "</ul>";
      }).join("");
    } catch (e) { box.textContent = e.message; }
  }

  let handed = [], asked = [];
  async function orders() {
    const list = $("orders");
    try {
      const all = (await M.api("GET", base + "/orders")).orders;
      if (!all.length) { list.innerHTML = "<li>" + M.esc(W.no_orders) + "</li>"; return; }
      handed = all.filter(function (o) { return HANDED_OVER.includes(o.status); });
      // requests are listed for refunded orders too: an approval that gave every line back must still show
      asked = all.filter(function (o) { return HANDED_OVER.includes(o.status) || o.status === "refunded"; });
      list.innerHTML = all.map(function (o) {
        const label = o.status === "group_forming" ? W.group_paid_wait : (W["status_" + o.status] || o.status);
        return '<li class="order" data-order="' + M.esc(o.order_id) + '" data-status="' + M.esc(o.status) + '">' +
          '<a href="/mall/orders/' + encodeURIComponent(o.order_id) + '">' + M.esc(W.order) + " " + M.esc(o.order_id.slice(-8)) +
          "</a> <span class=\"tag\">" + M.esc(label) + "</span> ¥" + M.yuan(o.total_fen) + "<br><small>" + M.esc(day(o.created_at)) +
          "</small>" + (HANDED_OVER.includes(o.status) ? ' <button type="button" class="ask" data-order="' +
          M.esc(o.order_id) + '">' + M.esc(W.mc_after_sales_ask) + "</button>" : "") + "</li>";
      }).join("");
      await afterSales();
    } catch (e) { list.innerHTML = "<li>" + M.esc(e.message) + "</li>"; }
  }

  let afterSalesTimer = 0, followed = false;
  async function afterSales() {
    const rows = [];
    let waiting = false;
    for (const o of asked.slice(0, AFTER_SALES_ORDERS_MAX)) {
      try {
        (await M.api("GET", "/orders/" + encodeURIComponent(o.order_id) + "/after-sales")).requests.forEach(function (r) {
          waiting = waiting || r.status === "requested";
          rows.push('<li data-request="' + M.esc(r.request_id) + '" data-status="' + M.esc(r.status) + '">' + M.esc(W.order) +
            " " + M.esc(o.order_id.slice(-8)) + ' · <span class="tag">' + M.esc(W["as_" + r.status] || r.status) +
            "</span> ¥" + M.yuan(r.amount_fen || 0) + "<br><small>" + M.esc(r.reason || "") + "</small></li>");
        });
      } catch (e) { /* that order's requests are shown on its own page */ }
    }
    $("after-sales").innerHTML = rows.join("") || "<li>" + M.esc(W.mc_after_sales_none) + "</li>";
    // a request waiting for the store's decision is followed: the decision shows without a reload
    clearTimeout(afterSalesTimer);
    if (waiting) afterSalesTimer = setTimeout(afterSales, AFTER_SALES_READ_MS);
    else if (followed) { account().catch(function () {}); orders(); }  // decided: the refund shows in both
    followed = waiting;
  }
  $("orders").addEventListener("click", function (ev) {
    const b = ev.target.closest("button.ask");
    if (!b) return;
    const o = handed.find(function (x) { return x.order_id === b.dataset.order; });
    const form = $("after-form");
    form.hidden = false; form.dataset.order = o.order_id;
    $("after-order").textContent = W.order + " " + o.order_id.slice(-8);
    $("after-line").innerHTML = o.lines.map(function (l) {
      return '<option value="' + M.esc(l.sku) + '" data-qty="' + (l.qty || l.weight_g || 1) + '">' + M.esc(l.name || l.sku) + "</option>";
    }).join("");
    $("after-reason").focus();
  });
  $("after-cancel").addEventListener("click", function () { $("after-form").hidden = true; });
  $("after-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const form = $("after-form"), line = $("after-line").selectedOptions[0];
    try {
      await once("after_" + form.dataset.order, "/orders/" + encodeURIComponent(form.dataset.order) + "/after-sales",
                 {lines: [{sku: line.value, qty: Number(line.dataset.qty)}], reason: $("after-reason").value,
                  with_return: $("after-return").checked});
      form.hidden = true; say("after-msg", W.mc_after_sales_sent);
      await afterSales();
    } catch (e) { say("after-msg", e.message, true); }
  });

  /* personal data: the API's answer saved as a file (the request needs the session, so not a plain link) */
  $("export").addEventListener("click", async function () {
    try {
      const data = await M.api("GET", base + "/personal-data");
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], {type: "application/json"}));
      const a = document.createElement("a");
      a.href = url; a.download = "freshmesh-" + me + ".json"; document.body.appendChild(a); a.click(); a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      say("export-msg", W.mc_exported);
    } catch (e) { say("export-msg", e.message, true); }
  });

  $("delete").addEventListener("click", function () { $("delete-box").hidden = false; $("delete-word").focus(); });
  $("delete-cancel").addEventListener("click", function () { $("delete-box").hidden = true; });
  $("delete-confirm").addEventListener("click", async function () {
    try {
      await M.api("POST", base + "/erasure", {confirm: $("delete-word").value.trim()});
      M.session.clear();
      $("delete-box").hidden = true; say("delete-msg", W.mc_deleted);
    } catch (e) { say("delete-msg", (e.status === 409 ? W.mc_delete_refused + " " : "") + e.message, true); }
  });

  account().catch(function (e) { say("top-up-msg", e.message, true); });
  offers(); coupons(); orders();
})();
