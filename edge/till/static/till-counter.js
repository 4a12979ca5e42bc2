// The till page's counter work (edge/till/counter_routes.py): the shift (sign-in with PIN, float, close with the
// count and its cash-up), pickups, returns against a receipt, the store's lists, jin. Every screen is a <dialog>, so
// the page's scan field (till.js) leaves the keyboard to it while it is open. Every figure comes from the box.
"use strict";
(() => {
  const lane = document.body.dataset.lane;
  const lang = document.body.dataset.lang;
  const base = `/till/${encodeURIComponent(lane)}`;
  const $ = (id) => document.getElementById(id);
  const words = $("counter-words").dataset;
  let shift = {locks: false, signed_in: null, show_jin: false};

  const fen = (text) => Math.round(parseFloat(String(text || "0").replace(/[¥,\s]/g, "") || "0") * 100);
  const yuan = (f) => (f / 100).toFixed(2);
  function say(dialog, text) { const m = dialog.querySelector(".dialog-msg"); if (m) m.textContent = text || ""; }

  async function call(method, path, body, dialog) {
    const r = await fetch(base + path + (path.includes("?") ? "&" : "?") + `lang=${lang}`, {
      method, headers: body ? {"Content-Type": "application/json"} : {}, body: body ? JSON.stringify(body) : undefined});
    const data = await r.json().catch(() => ({detail: r.statusText}));
    if (!r.ok) { if (dialog) say(dialog, data.detail || r.statusText); return null; }
    if (dialog) say(dialog, "");
    return data;
  }

  function open(dialog, focus) { dialog.querySelectorAll(".dialog-msg").forEach((m) => { m.textContent = ""; });
    if (!dialog.open) dialog.showModal(); (focus || dialog.querySelector("input"))?.focus(); }

  // ---- counts by denomination: each row's value and the total, as typed
  function count(prefix) {
    const out = [];
    document.querySelectorAll(`table.count[data-prefix='${prefix}'] input.pieces`).forEach((i) => {
      const n = parseInt(i.value || "0", 10) || 0;
      if (n) out.push({denomination_fen: Number(i.dataset.fen), pieces: n});
    });
    return out;
  }
  document.querySelectorAll("table.count").forEach((table) => table.addEventListener("input", () => {
    let total = 0;
    table.querySelectorAll("input.pieces").forEach((i) => {
      const sub = (parseInt(i.value || "0", 10) || 0) * Number(i.dataset.fen);
      i.closest("tr").querySelector(".sub").textContent = yuan(sub);
      total += sub;
    });
    $(`${table.dataset.prefix}-total`).textContent = yuan(total);
  }));
  function clearCount(prefix) {
    document.querySelectorAll(`table.count[data-prefix='${prefix}'] input.pieces`).forEach((i) => { i.value = ""; });
    document.querySelector(`table.count[data-prefix='${prefix}']`).dispatchEvent(new Event("input"));
  }

  // ---- the shift: locked until a cashier signs in, then the float
  const signin = $("signin-dialog"), floatDialog = $("float-dialog"), closeDialog = $("close-dialog");
  let padTarget = $("signin-cashier");
  [$("signin-cashier"), $("signin-pin")].forEach((i) => i.addEventListener("focus", () => { padTarget = i; }));
  $("signin-pad").addEventListener("click", (e) => {
    const key = e.target.closest(".key");
    if (!key) return;
    const k = key.dataset.key;
    padTarget.value = k === "back" ? padTarget.value.slice(0, -1) : k === "clear" ? "" : padTarget.value + k;
    padTarget.focus();
  });
  $("signin-cashier").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !$("signin-pin").value) { e.preventDefault(); $("signin-pin").focus(); }
  });
  signin.addEventListener("cancel", (e) => e.preventDefault());  // Esc does not unlock the till
  signin.addEventListener("close", () => { if (locked()) setTimeout(() => open(signin), 0); });
  floatDialog.addEventListener("cancel", (e) => e.preventDefault());
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const got = await call("POST", "/shift/sign-in", {cashier_id: $("signin-cashier").value.trim(),
                                                      pin: $("signin-pin").value}, signin);
    $("signin-pin").value = "";
    if (!got) { $("signin-pin").focus(); return; }
    showShift(got);
  });
  $("float-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const counted = count("float");
    const body = counted.length ? {counted} : {amount_fen: fen($("float-amount").value)};
    if (await call("POST", "/shift/float", body, floatDialog)) { shift.signed_in.float_fen = 1; showShift(shift); }
  });

  const locked = () => shift.locks && !shift.signed_in;
  function showShift(s) {
    shift = s;
    const duty = s.signed_in;
    $("on-duty").textContent = duty ? `${words.signedIn}: ${duty.cashier_id}` : "";
    $("btn-close-shift").hidden = !duty;
    document.body.dataset.shift = duty ? "open" : (s.locks ? "locked" : "none");
    jin();
    if (locked()) { open(signin, $("signin-cashier")); return; }
    if (signin.open) signin.close();
    if (duty && duty.float_fen === null) { clearCount("float"); $("float-amount").value = ""; open(floatDialog); return; }
    if (floatDialog.open) floatDialog.close();
  }

  // ---- closing the shift: the count, the cash-up checked, then closed (the report goes to HQ)
  const cashUp = $("cash-up");
  function openClose() { if (!shift.signed_in) return; cashUp.innerHTML = ""; clearCount("close"); open(closeDialog); }
  async function check(close) {
    const got = await call("POST", "/shift/cash-up", {counted: count("close"), close}, closeDialog);
    if (!got) return;
    cashUp.innerHTML = got.html;
    if (close) {
      $("close-go").hidden = true; $("close-check").hidden = true;
      shift.signed_in = null;
      $("on-duty").textContent = ""; $("btn-close-shift").hidden = true;
      closeDialog.querySelector(".close").focus();
    }
  }
  $("close-form").addEventListener("submit", (e) => { e.preventDefault(); check(false); });
  $("close-go").addEventListener("click", () => check(true));
  closeDialog.addEventListener("close", () => {
    $("close-go").hidden = false; $("close-check").hidden = false;
    showShift(shift);
  });

  // ---- pickups
  const pickup = $("pickup-dialog"), pickupCode = $("pickup-code"), pickupGo = $("pickup-go");
  let pickupAt = "";
  function openPickup() { pickupCode.value = ""; $("pickup-order").innerHTML = ""; pickupGo.hidden = true; open(pickup); }
  $("pickup-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const code = pickupCode.value.trim();
    pickupGo.hidden = true; $("pickup-order").innerHTML = "";
    if (!code) return;
    const got = await call("GET", `/pickup?code=${encodeURIComponent(code)}`, null, pickup);
    if (!got) return;
    $("pickup-order").innerHTML = got.html;
    pickupAt = code;
    if (got.status === "picked_up") { say(pickup, got.html && $("pickup-found").querySelector(".done").textContent); return; }
    pickupGo.hidden = false; pickupGo.focus();
  });
  pickupGo.addEventListener("click", async () => {
    const got = await call("POST", "/pickup", {code: pickupAt}, pickup);
    if (!got) return;
    $("pickup-order").innerHTML = got.html;
    pickupGo.hidden = true; pickupCode.value = ""; pickupCode.focus();
  });

  // ---- returns against a receipt
  const ret = $("return-dialog"), retCode = $("return-code"), retGo = $("return-go");
  function openReturn() { retCode.value = ""; $("return-sale").innerHTML = ""; retGo.hidden = true; open(ret); }
  $("return-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (document.activeElement && document.activeElement.classList.contains("ret-qty")) { doReturn(); return; }
    const code = retCode.value.trim();
    if (!code) return;
    const got = await call("GET", `/receipt?code=${encodeURIComponent(code)}`, null, ret);
    $("return-sale").innerHTML = got ? got.html : "";
    retGo.hidden = !got;
    if (got) (ret.querySelector(".ret-qty:not([disabled])") || retGo).focus();
  });
  async function doReturn() {
    const found = $("return-found");
    if (!found) return;
    const reason = $("return-reason").value, lines = [];
    found.querySelectorAll("tr.ret-line").forEach((row) => {
      const v = row.querySelector(".ret-qty").value.trim();
      if (!v) return;
      if (row.dataset.unit === "g") lines.push({sku: row.dataset.sku, weight_g: Math.round(parseFloat(v) * 1000), disposition: reason});
      else lines.push({sku: row.dataset.sku, qty: parseInt(v, 10), disposition: reason});
    });
    const got = await call("POST", "/return", {receipt: found.dataset.sale, return_id: found.dataset.returnId, lines}, ret);
    if (!got) return;
    $("return-sale").innerHTML = got.html;
    retGo.hidden = true; retCode.value = ""; retCode.focus();
  }
  retGo.addEventListener("click", doReturn);

  // ---- jin, where the store shows it: next to every kg weight and price the page renders
  function jin() {
    if (!shift.show_jin) return;
    document.querySelectorAll("#cart td.num, #receipt td.num").forEach((td) => {
      const m = /^(-?\d+\.\d{3}) kg$/.exec(td.textContent.trim());
      if (m && !td.querySelector(".jin")) {
        const span = document.createElement("small");
        span.className = "jin"; span.textContent = ` (${(parseFloat(m[1]) * 2).toFixed(3)} ${words.jin})`;
        td.appendChild(span);
      }
    });
    const weight = $("weight");
    if (weight && !$("weight-jin") && /^\d/.test(weight.textContent)) {
      const span = document.createElement("span");
      span.id = "weight-jin"; span.className = "unit jin";
      span.textContent = `${(parseFloat(weight.textContent) * 2).toFixed(3)} ${words.jin}`;
      weight.parentNode.appendChild(span);
    }
    document.querySelectorAll(".plu small").forEach((s) => {
      const m = /¥(\d+\.\d{2})\/kg$/.exec(s.textContent);
      if (m) s.textContent += ` · ¥${yuan(Math.floor((fen(m[1]) + 1) / 2))}${words.perJin}`;
    });
  }
  ["cart", "scale", "receipt"].forEach((id) => $(id) && new MutationObserver(jin).observe($(id), {childList: true, subtree: true}));

  // ---- buttons and shortcuts
  $("btn-pickup").addEventListener("click", openPickup);
  $("btn-return").addEventListener("click", openReturn);
  $("btn-close-shift").addEventListener("click", openClose);
  document.addEventListener("keydown", (e) => {
    if (document.querySelector("dialog[open]")) {
      if (e.key === "F10" && closeDialog.open && !$("close-go").hidden) { e.preventDefault(); check(true); }
      if (e.key === "F7" && ret.open && !retGo.hidden) { e.preventDefault(); doReturn(); }
      return;
    }
    const keys = {F3: openPickup, F7: openReturn, F9: () => { location.href = $("btn-store").href; }, F10: openClose};
    if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
  });
  // the page's void: counted in the shift report (the box keeps it with the lane's shift)
  call("GET", "/shift").then((s) => { if (s) showShift(s); });
})();
