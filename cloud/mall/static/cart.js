/* The cart page: lines from localStorage (pieces, or grams in 500 g steps for weighed goods), priced by the public
   POST /cart/price at the chosen store (list prices, or the member's own with a session). */
(function () {
  "use strict";
  const M = window.Mall, W = M.words, P = window.MallPricing;
  const linesEl = document.getElementById("lines"), msg = document.getElementById("cart-msg");
  const STEP_G = 500;
  let priced = {};

  function lineHtml(l, p) {
    const weighed = !!l.w;
    const step = weighed ? (l.qty < STEP_G ? l.qty : STEP_G) : 1;
    const amount = weighed ? l.qty + " " + W.grams : "×" + l.qty;
    return '<div class="line" data-sku="' + M.esc(l.sku) + '"><div><a href="/mall/products/' + encodeURIComponent(l.sku) + '">' +
      M.esc(p ? p.name : l.sku) + "</a>" + (p && p.amount_fen < p.list_fen ? ' <span class="was">¥' + M.yuan(p.list_fen) + "</span>" : "") +
      '</div><div class="price">' + (p ? "¥" + M.yuan(p.amount_fen) : "") + '</div><div class="ctl">' +
      '<button type="button" class="minus" data-step="' + step + '" aria-label="' + M.esc(W.qty_minus + " " + (p ? p.name : l.sku)) + '">−</button>' +
      "<output>" + M.esc(amount) + "</output>" +
      '<button type="button" class="plus" data-step="' + step + '" aria-label="' + M.esc(W.qty_plus + " " + (p ? p.name : l.sku)) + '">+</button>' +
      '</div><div><button type="button" class="link remove" aria-label="' + M.esc(W.remove + " " + (p ? p.name : l.sku)) + '">' + M.esc(W.remove) + "</button></div></div>";
  }

  async function refresh() {
    const lines = M.cart.lines();
    msg.textContent = "";
    if (!lines.length) {
      linesEl.innerHTML = '<p class="empty">' + M.esc(W.empty_cart) + "</p>";
      document.getElementById("totals").innerHTML = ""; document.getElementById("hints").innerHTML = "";
      document.getElementById("to-checkout").hidden = true;
      return;
    }
    document.getElementById("to-checkout").hidden = false;
    const store = M.place.store();
    if (!store) { msg.innerHTML = '<a href="/mall/stores?next=/mall/cart">' + M.esc(W.no_store) + "</a>"; }
    else {
      try {
        const p = await M.api("POST", "/cart/price", {fulfilment: "pickup", store_id: store, items: M.cart.items()});
        priced = {}; p.lines.forEach(function (l) { if (l.amount_fen > 0 || !priced[l.sku]) priced[l.sku] = l; });
        P.render(p, document.getElementById("totals"), document.getElementById("hints"));
      } catch (e) { msg.textContent = e.message; }
    }
    linesEl.innerHTML = lines.map(function (l) { return lineHtml(l, priced[l.sku]); }).join("");
  }

  linesEl.addEventListener("click", function (ev) {
    const b = ev.target.closest("button"); if (!b) return;
    const sku = b.closest(".line").dataset.sku;
    const now = M.cart.lines().find(function (l) { return l.sku === sku; });
    if (!now) return;
    if (b.classList.contains("remove")) M.cart.set(sku, 0);
    else if (b.classList.contains("plus")) M.cart.set(sku, now.qty + parseInt(b.dataset.step, 10));
    else if (b.classList.contains("minus")) M.cart.set(sku, Math.max(0, now.qty - parseInt(b.dataset.step, 10)));
    refresh();
  });
  refresh();
})();
