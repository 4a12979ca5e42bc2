// The till page's behaviour: every action posts to the box and shows the HTML the box renders; the box's event
// stream keeps the cart, the scale and the connection banner current. Keyboard first: the scan field keeps focus.
"use strict";
(() => {
  const lane = document.body.dataset.lane;
  const base = `/till/${encodeURIComponent(lane)}`;
  const $ = (id) => document.getElementById(id);
  const scan = $("scan"), cart = $("cart"), message = $("message");
  let selected = -1;

  const openDialog = () => document.querySelector("dialog[open]");
  const refocus = () => { if (!openDialog()) scan.focus(); };
  const say = (text) => {  // also inside an open dialog: the cashier looks at the dialog, not behind it
    message.textContent = text || "";
    document.querySelectorAll(".dialog-msg").forEach((m) => { m.textContent = text || ""; });
  };

  function showCart(html) {
    cart.innerHTML = html;
    const rows = cart.querySelectorAll("tr.line");
    if (selected >= rows.length || selected < 0) selected = rows.length - 1;
    rows.forEach((r, i) => r.classList.toggle("sel", i === selected));
  }

  async function send(method, path, body) {
    const r = await fetch(base + path, {method, headers: body ? {"Content-Type": "application/json"} : {},
                                        body: body ? JSON.stringify(body) : undefined});
    const data = await r.json().catch(() => ({detail: r.statusText}));
    if (!r.ok) { say(data.detail || r.statusText); return null; }
    say("");
    if (data.html !== undefined && path !== "/pay") { selected = data.lines - 1; showCart(data.html); }
    return data;
  }

  function selectedLine() {
    const rows = cart.querySelectorAll("tr.line");
    return rows[selected] || null;
  }

  async function changeQty(delta) {
    const row = selectedLine();
    if (!row || !row.dataset.qty) return;
    const keep = selected;
    if (await send("POST", `/lines/${row.dataset.index}`, {sku: row.dataset.sku, qty: Number(row.dataset.qty) + delta})) {
      selected = keep; showCart(cart.innerHTML);
    }
  }

  async function deleteLine() {
    const row = selectedLine();
    if (row) await send("POST", `/lines/${row.dataset.index}`, {sku: row.dataset.sku});
  }

  scan.addEventListener("keydown", async (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const code = scan.value.trim();
    scan.value = "";
    if (code) await send("POST", "/scan", {code});
  });
  document.addEventListener("click", refocus);
  scan.addEventListener("blur", () => setTimeout(refocus, 0));

  document.querySelectorAll(".cat").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".cat").forEach((c) => c.classList.toggle("on", c === b));
    document.querySelectorAll(".grid").forEach((g) => { g.hidden = g.dataset.cat !== b.dataset.cat; });
  }));
  document.querySelectorAll(".plu").forEach((b) => b.addEventListener("click", () => send("POST", "/weigh", {sku: b.dataset.sku})));

  // members
  const memberDialog = $("member-dialog"), memberInput = $("member-input");
  function openMember() { say(""); memberInput.value = ""; memberDialog.showModal(); memberInput.focus(); }
  $("member-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = memberInput.value.trim();
    if (!v) return;
    const body = /^\+?\d{11,}$/.test(v) ? {phone: v} : {member_code: v};
    if (await send("POST", "/member", body)) { memberDialog.close(); if (window.tillMoney) window.tillMoney.memberFound(); else refocus(); }
  });

  // paying
  const payDialog = $("pay-dialog"), tendered = $("tendered");
  function openPay() {
    $("pay-due").textContent = ($("total") || {}).textContent || "";
    say(""); tendered.value = ""; payDialog.showModal(); tendered.focus();
  }
  async function pay(method) {
    const fen = Math.round(parseFloat(tendered.value || "0") * 100);
    const paid = await send("POST", "/pay", {method, tendered_fen: method === "cash" ? fen : 0});
    if (!paid) return;
    payDialog.close();
    $("receipt").innerHTML = paid.html;
    $("receipt-dialog").showModal();
    $("receipt-close").focus();
    const fresh = await send("GET", "/cart");
    if (fresh) showCart(fresh.html);
  }
  $("pay-form").addEventListener("submit", (e) => { e.preventDefault(); pay("cash"); });
  $("pay-sv").addEventListener("click", () => pay("stored_value"));

  // voiding
  const voidDialog = $("void-dialog");
  function openVoid() { voidDialog.showModal(); $("void-yes").focus(); }
  $("void-yes").addEventListener("click", async () => { voidDialog.close(); await send("DELETE", "/cart"); refocus(); });

  document.querySelectorAll("dialog .close").forEach((b) => b.addEventListener("click", (e) => {
    e.preventDefault(); b.closest("dialog").close(); refocus();
  }));
  document.querySelectorAll("dialog").forEach((d) => d.addEventListener("close", () => setTimeout(refocus, 0)));

  $("btn-member").addEventListener("click", openMember);
  const openPayPanel = () => (window.tillMoney ? window.tillMoney.openPay() : openPay());  // till-money.js's panel
  $("btn-pay").addEventListener("click", openPayPanel);
  $("btn-void").addEventListener("click", openVoid);
  $("btn-delete").addEventListener("click", deleteLine);
  $("btn-plus").addEventListener("click", () => changeQty(1));
  $("btn-minus").addEventListener("click", () => changeQty(-1));

  document.addEventListener("keydown", (e) => {
    if (openDialog()) {
      if (e.key === "F8" && payDialog.open) { e.preventDefault(); pay("stored_value"); }
      return;  // a dialog's own keys: Enter submits, Esc closes
    }
    const rows = cart.querySelectorAll("tr.line");
    const keys = {
      F2: openMember, F4: openPayPanel, Escape: openVoid, Delete: deleteLine,
      ArrowUp: () => { selected = Math.max(0, selected - 1); showCart(cart.innerHTML); },
      ArrowDown: () => { selected = Math.min(rows.length - 1, selected + 1); showCart(cart.innerHTML); },
      "+": () => changeQty(1), "-": () => changeQty(-1),
    };
    if (keys[e.key] && !(e.target === scan && (e.key === "+" || e.key === "-") && scan.value)) {
      e.preventDefault(); keys[e.key]();
    }
  });

  // the box's live view: cart changes (a serial scan), the scale, the connection banner
  function listen() {
    const es = new EventSource(`${base}/events`);
    es.addEventListener("cart", (e) => showCart(JSON.parse(e.data)));
    es.addEventListener("scale", (e) => { $("scale").innerHTML = JSON.parse(e.data); });
    es.addEventListener("status", (e) => { $("status").innerHTML = JSON.parse(e.data); });
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) setTimeout(listen, 1000); };
  }
  listen();
  refocus();
})();
