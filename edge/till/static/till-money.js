// Members and money on the till page (edge/till/money_routes.py): the member panel, registering a member,
// applying a member's coupon, the pay panel (cash with quick tenders and change, stored value, points, the simulated
// wallet, split payments) and the receipt's reprint. The box renders every panel; this file only works its inputs.
// Keyboard first: each button shows its key. Loaded before till.js, which calls window.tillMoney.
"use strict";
(() => {
  const lane = document.body.dataset.lane;
  const base = `/till/${encodeURIComponent(lane)}`;
  const $ = (id) => document.getElementById(id);
  const WALLET_TIMEOUT_MS = 15000;  // no answer by then: the cashier sees "no answer" and may retry (same key)
  const fen = (text) => Math.round(parseFloat(String(text || "0").replace(",", ".")) * 100) || 0;
  const yuan = (f) => (f / 100).toFixed(2);
  const newKey = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;

  function say(dialog, text) {
    const m = dialog && dialog.querySelector(".dialog-msg");
    if (m) m.textContent = text || "";
    else $("message").textContent = text || "";
  }
  async function call(method, path, body, opts = {}) {
    const headers = body ? {"Content-Type": "application/json"} : {};
    if (opts.key) headers["Idempotency-Key"] = opts.key;
    const r = await fetch(base + path, {method, headers, body: body ? JSON.stringify(body) : undefined, signal: opts.signal});
    const data = await r.json().catch(() => ({detail: r.statusText}));
    return {ok: r.ok, status: r.status, data};
  }
  function clearMessages() {
    $("message").textContent = "";
    document.querySelectorAll(".dialog-msg").forEach((m) => { m.textContent = ""; });
  }
  function showCart(html) { if (html !== undefined) $("cart").innerHTML = html; }
  const scanFocus = () => { if (!document.querySelector("dialog[open]")) $("scan").focus(); };

  // ---- the member panel --------------------------------------------------------------------------------
  const mpanel = $("mpanel-dialog");
  async function openPanel() {
    const r = await call("GET", "/member-panel");
    if (!r.ok) { say(null, r.data.detail); return; }
    $("mpanel").innerHTML = r.data.html;
    clearMessages();
    if (!mpanel.open) mpanel.showModal();
    $("mpanel-register").focus();
  }
  $("mpanel").addEventListener("click", (e) => {
    const b = e.target.closest(".mp-apply");
    if (b) applyCoupon(b);
  });
  async function applyCoupon(button) {
    if (button.disabled) return;
    const r = await call("POST", "/coupons/apply", {code_tail: button.dataset.tail, rule_id: button.dataset.rule});
    if (!r.ok) { say(mpanel, r.data.detail); return; }
    say(mpanel, "");
    $("mpanel").innerHTML = r.data.panel;
    showCart(r.data.html);
  }

  // ---- registering a member ----------------------------------------------------------------------------
  const reg = $("register-dialog");
  function openRegister() {
    document.querySelectorAll("dialog[open]").forEach((d) => { if (d !== reg) d.close(); });
    $("register-phone").value = ""; $("register-name").value = ""; say(reg, "");
    reg.showModal(); $("register-phone").focus();
  }
  $("register-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const phone = $("register-phone").value.trim();
    if (!phone) return;
    const r = await call("POST", "/members", {phone, name: $("register-name").value.trim()});
    if (!r.ok) { say(reg, r.data.detail); return; }
    reg.close();
    clearMessages();  // the lookup's "no member" is answered now
    showCart(r.data.html);
    $("mpanel").innerHTML = r.data.panel;
    mpanel.showModal();
    $("mpanel-register").focus();
  });
  $("mpanel-register").addEventListener("click", openRegister);
  $("member-new").addEventListener("click", openRegister);

  // ---- the pay panel -----------------------------------------------------------------------------------
  const payDialog = $("money-pay-dialog");
  let payKey = null, split = "none", paying = false;
  const splitModes = ["none", "sv", "wallet"];
  const total = () => Number(($("money-pay").querySelector(".pp") || {dataset: {}}).dataset.total || 0);

  async function openPay() {
    const r = await call("GET", "/pay-panel");
    if (!r.ok) { say(null, r.data.detail); return; }
    $("money-pay").innerHTML = r.data.html;
    payKey = newKey(); split = "none"; paying = false;
    say(payDialog, "");
    payDialog.showModal();
    wirePanel();
    $("pp-tendered").focus();
  }

  function pointsFen() {
    const p = $("pp-points");
    if (!p || !p.value) return 0;
    const per = Number($("money-pay").querySelector(".pp").dataset.pointsPerYuan || 100);
    return Math.floor(Number(p.value) * 100 / per);
  }
  function firstFen() { return split === "none" ? 0 : fen($("pp-first").value); }
  function restDue() { return Math.max(total() - pointsFen() - firstFen(), 0); }
  function refresh() {
    const rest = restDue();
    $("pp-change").textContent = "¥" + yuan(Math.max(fen($("pp-tendered").value) - rest, 0));
    const w = $("pp-points-worth");
    if (w) w.textContent = w.dataset.text.replace("{points}", $("pp-points").value || "0").replace("{value}", yuan(pointsFen()));
    $("pp-rest").hidden = split === "none" && !pointsFen();
    $("pp-rest-amount").textContent = "¥" + yuan(rest);
  }
  function quick(q) {
    const rest = restDue();
    const step = q === "exact" ? 1 : Number(q) * 100;
    const value = q === "exact" ? rest : Math.max(Math.ceil(rest / step) * step, step);
    $("pp-tendered").value = yuan(value);
    refresh();
  }
  function cycleSplit() {
    split = splitModes[(splitModes.indexOf(split) + 1) % splitModes.length];
    const words = $("pp-split-words").dataset;
    $("pp-split").textContent = words[split];
    $("pp-split").dataset.mode = split;
    $("pp-first").hidden = split === "none";
    if (split !== "none") $("pp-first").focus();
    refresh();
  }
  function wirePanel() {
    const panel = $("money-pay");
    panel.querySelectorAll("input").forEach((i) => i.addEventListener("input", () => { say(payDialog, ""); refresh(); }));
    panel.querySelectorAll(".pp-q").forEach((b) => b.addEventListener("click", () => quick(b.dataset.q)));
    $("pp-split").addEventListener("click", cycleSplit);
    $("pp-sv").addEventListener("click", () => pay("stored_value"));
    $("pp-wallet").addEventListener("click", () => pay("wallet_sim"));
    $("pp-wallet-retry").addEventListener("click", () => pay("wallet_sim"));
    panel.querySelectorAll(".close").forEach((b) => b.addEventListener("click", (e) => { e.preventDefault(); payDialog.close(); }));
    refresh();
  }
  $("money-pay-form").addEventListener("submit", (e) => { e.preventDefault(); pay("cash"); });

  function walletState(state) {
    const box = $("pp-wallet-box"), label = $("pp-wallet-state");
    box.hidden = !state;
    if (!state) return;
    label.textContent = label.dataset[state];
    label.className = "ws-" + state;
    $("pp-wallet-retry").hidden = !(state === "failed" || state === "timeout");
  }

  async function pay(method) {
    if (paying) return;
    const body = {method, tendered_fen: 0};
    if (split !== "none") {
      body.first = {method: split === "sv" ? "stored_value" : "wallet_sim", amount_fen: firstFen()};
      if (method === "stored_value" || (split === "wallet" && method === "wallet_sim")) {
        method = body.method = "cash";  // the first part is named by the split; the rest by the button, cash by default
      }
    }
    if (pointsFen()) body.points = Number($("pp-points").value);
    if (body.method === "cash") body.tendered_fen = fen($("pp-tendered").value);
    const wallet = body.method === "wallet_sim" || (body.first && body.first.method === "wallet_sim");
    const ctl = new AbortController();
    const timer = wallet ? setTimeout(() => ctl.abort(), WALLET_TIMEOUT_MS) : null;
    paying = true;
    if (wallet) walletState("waiting");
    let r;
    try {
      r = await call("POST", "/tender", body, {key: payKey, signal: ctl.signal});
    } catch (err) {  // no answer in time (or the page lost the box): a retry with the same key makes no second sale
      paying = false;
      if (wallet) walletState("timeout");
      say(payDialog, String(err.name === "AbortError" ? $("pp-wallet-state").dataset.timeout : err));
      return;
    } finally { if (timer) clearTimeout(timer); }
    paying = false;
    if (!r.ok) {
      if (wallet) walletState("failed");
      say(payDialog, r.data.detail || r.status);
      return;
    }
    if (wallet) walletState("paid");
    payDialog.close();
    $("receipt").innerHTML = r.data.html;
    $("receipt-dialog").showModal();
    $("receipt-close").focus();
    const fresh = await call("GET", "/cart");
    if (fresh.ok) showCart(fresh.data.html);
  }

  // ---- the receipt's reprint ---------------------------------------------------------------------------
  async function reprint() {
    const b = $("receipt-reprint");
    if (!b) return;
    const r = await call("POST", `/receipts/${encodeURIComponent(b.dataset.sale)}/print`);
    const state = $("reprint-state");
    state.textContent = r.ok ? state.dataset.printed : (r.data.detail || r.status);
  }
  $("receipt").addEventListener("click", (e) => { if (e.target.closest("#receipt-reprint")) reprint(); });

  // ---- keys --------------------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    const open = document.querySelector("dialog[open]");
    let act = null;
    if (open === payDialog) {
      act = {F1: () => quick("exact"), F2: () => quick("10"), F3: () => quick("50"), F4: () => quick("100"),
             F6: cycleSplit, F7: () => { const p = $("pp-points"); if (p) p.focus(); },
             F8: () => pay("stored_value"), F9: () => pay("wallet_sim")}[e.key];
    } else if (open === mpanel) {
      if (e.key === "F6") act = openRegister;
      else if (/^[1-9]$/.test(e.key)) {
        const b = mpanel.querySelectorAll(".mp-apply")[Number(e.key) - 1];
        if (b) act = () => applyCoupon(b);
      }
    } else if (open === $("member-dialog")) {
      if (e.key === "F6") act = openRegister;
    } else if (open === $("receipt-dialog")) {
      if (e.key === "F7") act = reprint;
    } else if (!open && e.key === "F6") {
      act = openRegister;
    }
    if (act) { e.preventDefault(); e.stopImmediatePropagation(); act(); }
  }, true);
  document.querySelectorAll("#mpanel-dialog, #register-dialog, #money-pay-dialog").forEach((d) =>
    d.addEventListener("close", () => setTimeout(scanFocus, 0)));

  window.tillMoney = {openPay, memberFound: openPanel, openRegister};
})();
