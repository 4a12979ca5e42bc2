/* Group buys, through the public API only: open a group (POST /group-buys), join one by its share link
   (POST /group-buys/{id}/join), pay the held order (POST /orders/{id}/pay), and follow the group
   (GET /group-buys/{id}: members masked) with a countdown to its deadline. Each open/join attempt has one
   Idempotency-Key, kept until the API gives its answer, so a retry never takes a second place. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const POLL_MS = 3000;
  const msg = document.getElementById("group-msg");
  function say(text, isError) { if (msg) { msg.textContent = text || ""; msg.classList.toggle("error", !!isError); } }
  function fill(template, values) {
    return Object.keys(values).reduce(function (t, k) { return t.split("{" + k + "}").join(String(values[k])); }, template);
  }
  function place() {
    return {qty: parseInt(document.getElementById("g-qty").value, 10) || 1,
            store_id: document.getElementById("g-store").value, slot_start: document.getElementById("g-slot").value};
  }
  function needSignIn() {
    if (M.session.token()) return false;
    location.href = "/mall/signin?next=" + encodeURIComponent(location.pathname);
    return true;
  }
  function remember(groupId, orderId) {
    localStorage.setItem("group_order_" + groupId, JSON.stringify({member: M.session.member(), order_id: orderId}));
  }
  const once = M.once;  // one Idempotency-Key per attempt (mall.js)

  const openForm = document.getElementById("open-form");
  if (openForm) {
    const rule = document.getElementById("deal").dataset.rule;
    openForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      if (needSignIn()) return;
      const button = document.getElementById("open-group");
      button.disabled = true;
      try {
        const made = await once("group_open_" + rule, "/group-buys", Object.assign({rule_id: rule}, place()));
        remember(made.group.group_id, made.order.order_id);
        location.href = "/mall/groups/" + encodeURIComponent(made.group.group_id);
      } catch (e) { say(e.message, true); button.disabled = false; }
    });
  }

  const el = document.getElementById("group");
  if (!el) return;
  const gid = el.dataset.group, closes = Number(el.dataset.closes);
  const skew = Number(el.dataset.now) - Date.now();
  let view = null;

  function mine() {
    try {
      const m = JSON.parse(localStorage.getItem("group_order_" + gid) || "null");
      return m && m.member === M.session.member() ? m.order_id : null;
    } catch (e) { return null; }
  }

  function tick() {
    const s = Math.max(0, Math.floor((closes - Date.now() - skew) / 1000)), h = Math.floor(s / 3600);
    const two = function (n) { return String(n).padStart(2, "0"); };
    document.getElementById("group-countdown").textContent =
      (h ? h + ":" : "") + two(Math.floor((s % 3600) / 60)) + ":" + two(s % 60);
  }

  function render(g) {
    view = g;
    el.dataset.status = g.status;
    const state = document.getElementById("group-state"), note = document.getElementById("group-note");
    state.dataset.status = g.status;
    state.textContent = {open: W.group_forming, formed: W.group_formed, failed: W.group_failed,
                         cancelled: W.group_cancelled}[g.status] || g.status;
    note.textContent = {formed: W.group_formed_note, failed: W.group_failed_note, cancelled: W.group_failed_note}[g.status] || "";
    const count = document.getElementById("group-count");
    count.dataset.joined = g.joined;
    count.textContent = fill(W.group_joined_of, {joined: g.joined, size: g.size}) +
      (g.status === "open" && g.remaining > 0 ? " · " + fill(W.group_needed, {n: g.remaining}) : "");
    document.getElementById("group-clock").hidden = g.status !== "open";
    const share = el.querySelector(".share");
    if (share) share.hidden = g.status !== "open";  // a formed or failed group takes no one: nothing to share
    document.getElementById("group-members").innerHTML = g.members.map(function (m) {
      return "<li>" + M.esc(m.name) + (m.leader ? ' <span class="tag">' + M.esc(W.group_leader) + "</span>" : "") + "</li>";
    }).join("");
    const joinForm = document.getElementById("join-form");
    joinForm.hidden = !!mine() || g.status !== "open" || g.remaining <= 0;
    if (!mine() && g.status === "open" && g.remaining <= 0) say(W.group_full, false);
  }

  async function showMine() {
    const orderId = mine();
    const box = document.getElementById("mine");
    if (!orderId) { box.hidden = true; return; }
    box.hidden = false;
    document.getElementById("mine-link").href = "/mall/orders/" + encodeURIComponent(orderId);
    try {
      const o = await M.api("GET", "/orders/" + encodeURIComponent(orderId));
      const status = document.getElementById("mine-status");
      status.dataset.status = o.status;
      status.textContent = o.status === "group_forming" ? W.group_paid_wait : (W["status_" + o.status] || o.status);
      // an order that ended unserved after it was paid has its payment given back through the same way
      const givenBack = (o.status === "cancelled" || o.status === "refunded") && o.payment && o.payment.state === "done";
      if (givenBack) status.textContent += " · " + fill(W.refund_of, {amount: M.yuan(o.payment.amount_fen)});
      status.dataset.refunded = givenBack ? String(o.payment.amount_fen) : "";
      document.getElementById("mine-total").textContent = "¥" + M.yuan(o.total_fen);
      document.getElementById("pay-group").hidden = o.status !== "reserved";
    } catch (e) { say(e.message, true); }
  }

  async function refresh() {
    try { render(await M.api("GET", "/group-buys/" + encodeURIComponent(gid))); } catch (e) { /* next poll */ }
    await showMine();
  }

  document.getElementById("join-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    if (needSignIn()) return;
    const button = document.getElementById("join-group");
    button.disabled = true;
    try {
      const made = await once("group_join_" + gid, "/group-buys/" + encodeURIComponent(gid) + "/join", place());
      remember(gid, made.order.order_id);
      say("", false);
      await refresh();
    } catch (e) { say(e.message, true); }
    button.disabled = false;
  });
  document.getElementById("pay-group").addEventListener("click", async function () {
    const button = document.getElementById("pay-group");
    button.disabled = true;
    try {
      await M.api("POST", "/orders/" + encodeURIComponent(mine()) + "/pay", {method: "stored_value"});
      say("", false);
    } catch (e) { say(e.message, true); }
    button.disabled = false;
    await refresh();
  });
  document.getElementById("copy-link").addEventListener("click", async function () {
    const input = document.getElementById("share-url");
    try { await navigator.clipboard.writeText(input.value); } catch (e) { input.select(); }
    M.flash(W.group_copied, false);
  });
  tick(); setInterval(tick, 1000);
  refresh(); setInterval(refresh, POLL_MS);
})();
