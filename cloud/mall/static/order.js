/* The order page, live: follows GET /orders/{id}/events (server-sent events; the session token as ?token=, since
   EventSource sends no headers) and re-reads GET /orders/{id} on each step: the status, the timeline (picking,
   weight adjustments and refunds, rider notes) and the rider's last position on the map. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const root = document.getElementById("order"), id = root.dataset.order;
  const timeline = document.getElementById("timeline"), map = document.getElementById("map");
  const note = sessionStorage.getItem("mall_flash");
  if (note) { M.flash(note, true); sessionStorage.removeItem("mall_flash"); }
  const HIDE_CODE = ["pending", "reserved", "cancelled", "expired", "rejected"];

  function describe(e) {
    const d = e.detail || {};
    const parts = [];
    if (d.rider && d.rider.name) parts.push(W.rider + " " + d.rider.name);
    if (d.status && e.event === "rider") parts.push(W["rider_" + d.status] || d.status);
    if (e.event === "refunded_part" && d.amount_fen) parts.push("¥" + M.yuan(d.amount_fen));  // after the word "refund"
    if (d.reason) parts.push(d.reason);
    return parts.join(" · ");
  }
  const CN_TIME = new Intl.DateTimeFormat(document.documentElement.lang, {timeZone: "Asia/Shanghai", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  function when(at) { try { return CN_TIME.format(new Date(at)); } catch (e) { return at; } }
  function project(lat, lon) {
    const s = +map.dataset.south, n = +map.dataset.north, w = +map.dataset.west, e = +map.dataset.east;
    const vb = map.viewBox.baseVal, pad = 24;
    const x = pad + (lon - w) / (e - w) * (vb.width - 2 * pad), y = pad + (n - lat) / (n - s) * (vb.height - 2 * pad);
    return {x: Math.min(Math.max(x, 0), vb.width), y: Math.min(Math.max(y, 0), vb.height)};
  }
  function show(order) {
    root.dataset.status = order.status;
    document.getElementById("state").textContent = W["status_" + order.status] || order.status;
    document.getElementById("total").textContent = M.yuan(order.total_fen);
    const refunded = document.getElementById("refunded");
    refunded.textContent = order.refunded_fen ? "· " + refunded.dataset.template.replace("{amount}", M.yuan(order.refunded_fen)) : "";
    const pickup = document.getElementById("pickup");
    if (pickup) pickup.hidden = HIDE_CODE.includes(order.status);
    const walletPay = document.getElementById("wallet-pay");
    if (walletPay && order.status !== "reserved") walletPay.hidden = true;
    timeline.innerHTML = (order.timeline || []).map(function (e) {
      return '<li data-event="' + M.esc(e.event) + '" data-status="' + M.esc(e.status) + '"><strong>' +
        M.esc(W["status_" + e.status] || e.status) + "</strong> " + M.esc(W["ev_" + e.event] || "") + " " +
        M.esc(describe(e)) + '<time datetime="' + M.esc(e.at) + '">' + M.esc(when(e.at)) + "</time></li>";
    }).join("");
    if (map) {
      const moves = (order.timeline || []).filter(function (e) { return e.detail && e.detail.position; });
      if (moves.length) {
        const last = moves[moves.length - 1], at = project(last.detail.position.lat, last.detail.position.lon);
        const rider = document.getElementById("map-rider");
        rider.setAttribute("transform", "translate(" + at.x.toFixed(1) + "," + at.y.toFixed(1) + ")");
        rider.removeAttribute("hidden");
        rider.dataset.lat = last.detail.position.lat; rider.dataset.lon = last.detail.position.lon;
        document.getElementById("rider-info").textContent = W.rider_position + (document.body.dataset.lang === "zh" ? "：" : ": ") +
          last.detail.position.lat.toFixed(5) + ", " + last.detail.position.lon.toFixed(5);
      }
    }
  }
  async function reread() {
    try { show(await M.api("GET", "/orders/" + encodeURIComponent(id))); }
    catch (e) { M.flash(e.message, true); }
  }
  show(JSON.parse(document.getElementById("order-data").textContent));
  if (M.session.token() && window.EventSource) {
    const src = new EventSource("/orders/" + encodeURIComponent(id) + "/events?token=" + encodeURIComponent(M.session.token()));
    src.addEventListener("open", function () { document.getElementById("live").hidden = false; });
    src.addEventListener("step", reread);
    src.addEventListener("error", function () { document.getElementById("live").hidden = true; });
  }
})();
