/* Browse pages: add to the cart (pieces, or grams of weighed goods), add a scene's kit, find the nearest store. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const form = document.getElementById("add-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const card = document.querySelector("[data-sku]");
      const amount = parseInt(document.getElementById("amount").value, 10);
      if (!(amount > 0)) return;
      M.cart.add(card.dataset.sku, amount, card.dataset.weighed === "true");
      const state = document.getElementById("availability");
      if (state && state.dataset.state === "presale") {  // remembered: checkout offers the order as a pre-sale
        M.cart.save(M.cart.lines().map(function (l) { return l.sku === card.dataset.sku ? Object.assign(l, {p: true}) : l; }));
      }
      M.flash(W.added, false);
    });
  }
  const scene = document.getElementById("add-scene");
  if (scene) {
    scene.addEventListener("click", function () {
      const weighed = scene.dataset.weighed.split(",");
      scene.dataset.skus.split(",").forEach(function (sku) { M.cart.add(sku, weighed.includes(sku) ? 500 : 1, weighed.includes(sku)); });
      M.flash(W.added, false);
    });
  }
  const locate = document.getElementById("locate");
  if (locate) {
    locate.addEventListener("click", function () {
      if (!navigator.geolocation) { M.flash(W.error_generic, true); return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        const next = document.querySelector(".stores").dataset.next || "";
        location.href = "/mall/stores?lat=" + pos.coords.latitude + "&lon=" + pos.coords.longitude +
          (next ? "&next=" + encodeURIComponent(next) : "");
      }, function (err) { M.flash(err.message || W.error_generic, true); });
    });
  }
})();
