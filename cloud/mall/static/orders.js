/* The customer's orders placed from this browser (ids kept when placed), each read with GET /orders/{id}. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  if (!M.session.token()) { document.getElementById("need-signin").hidden = false; return; }
  const ids = JSON.parse(localStorage.getItem("mall_orders") || "[]");
  const list = document.getElementById("order-list");
  if (!ids.length) { document.getElementById("no-orders").hidden = false; return; }
  ids.slice(0, 30).forEach(async function (id) {
    try {
      const o = await M.api("GET", "/orders/" + encodeURIComponent(id));
      const li = document.createElement("li");
      li.className = "card"; li.dataset.order = id;
      li.innerHTML = '<a href="/mall/orders/' + encodeURIComponent(id) + '"><strong>' + M.esc(W["status_" + o.status] || o.status) +
        "</strong> · ¥" + M.yuan(o.total_fen) + " · " + M.esc(new Date(o.created_at).toLocaleString(document.documentElement.lang, {timeZone: "Asia/Shanghai"})) + "</a>";
      list.appendChild(li);
    } catch (e) { /* another member's or gone: not listed */ }
  });
})();
