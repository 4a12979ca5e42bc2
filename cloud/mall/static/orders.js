/* The signed-in member's orders, newest first, from the public GET /members/{id}/orders (what any front end reads):
   each with its status, total, pickup or delivery (the store, the slot) and a link to its order page. Nothing is
   kept in the browser: orders placed on another phone, at a flash sale or in a group show here too. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const SHOWN_MAX = 50;
  const list = document.getElementById("order-list"), member = M.session.member();
  const STORES = JSON.parse(document.getElementById("store-names").textContent);
  if (!M.session.token() || !member) { document.getElementById("need-signin").hidden = false; return; }
  function when(t) {
    return t ? new Date(t).toLocaleString(document.documentElement.lang, {timeZone: "Asia/Shanghai",
      month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"}) : "";
  }
  function row(o) {
    const how = o.fulfilment === "delivery" ? W.delivery : W.pickup;
    const names = (o.lines || []).map(function (l) { return l.name || l.sku; });
    const li = document.createElement("li");
    li.className = "card order-row"; li.dataset.order = o.order_id; li.dataset.status = o.status;
    li.innerHTML = '<a href="/mall/orders/' + encodeURIComponent(o.order_id) + '">' +
      '<span class="order-head"><strong class="tag status">' + M.esc(W["status_" + o.status] || o.status) + "</strong>" +
      '<span class="price">¥' + M.esc(M.yuan(o.total_fen)) + "</span></span>" +
      '<span class="order-what">' + M.esc(names.slice(0, 3).join("、") + (names.length > 3 ? "…" : "")) + "</span>" +
      '<small><span class="fulfilment">' + M.esc(how) + "</span>" + (o.stores && o.stores.length ? " · " + M.esc(o.stores.map(function (s) { return STORES[s] || s; }).join(", ")) : "") +
      (o.slot_start ? " · " + M.esc(W.slot) + " <time>" + M.esc(when(o.slot_start)) + "</time>" : "") +
      " · " + M.esc(W.order_placed) + " <time>" + M.esc(when(o.created_at)) + "</time></small></a>";
    return li;
  }
  (async function () {
    try {
      const answer = await M.api("GET", "/members/" + encodeURIComponent(member) + "/orders?limit=" + SHOWN_MAX);
      if (!answer.orders.length) { document.getElementById("no-orders").hidden = false; return; }
      answer.orders.forEach(function (o) { list.appendChild(row(o)); });  // the API answers newest first
    } catch (e) { M.flash(e.message, true); }
  })();
})();
