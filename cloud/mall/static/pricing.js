/* Showing a POST /cart/price answer: totals, each saving with its rule, near misses, the delivery fee. Shared by the
   cart and checkout pages (window.MallPricing). */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  function fmt(t, vals) { return t.replace(/\{(\w+)\}/g, function (_, k) { return vals[k]; }); }
  function row(label, value, cls) {
    return '<div class="' + (cls || "") + '"><span>' + M.esc(label) + "</span><span>" + M.esc(value) + "</span></div>";
  }
  function render(p, summary, hints) {
    let html = row(W.subtotal, "¥" + M.yuan(p.subtotal_fen));
    p.applied.forEach(function (a) {
      html += row(fmt(W.saved_by, {name: a.name, amount: M.yuan(a.saving_fen)}), "-¥" + M.yuan(a.saving_fen), "saving applied");
    });
    if (p.delivery) html += row(W.delivery_fee, p.delivery.fee_fen ? "¥" + M.yuan(p.delivery.fee_fen) : W.free, "fee");
    html += row(W.total, "¥" + M.yuan(p.total_fen), "total");
    summary.innerHTML = html;
    summary.dataset.total = String(p.total_fen);
    let h = "";
    p.almost.forEach(function (n) {
      h += '<p class="hint near">' + M.esc(fmt(W.near_miss, {missing: M.yuan(n.missing_fen), name: n.name})) + "</p>";
    });
    if (p.delivery && p.delivery.missing_for_free_fen > 0) {
      h += '<p class="hint">' + M.esc(fmt(W.free_delivery_missing, {missing: M.yuan(p.delivery.missing_for_free_fen)})) + "</p>";
    }
    if (hints) hints.innerHTML = h;
  }
  window.MallPricing = {render: render, fmt: fmt};
})();
