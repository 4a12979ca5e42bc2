/* Checkout through the public API only: price with POST /cart/price (slots, fee, coupons), place with POST /orders
   (one Idempotency-Key per attempt, kept until it is answered, so a retry never places twice), pay with
   POST /orders/{id}/pay (stored value now; the wallet answers 202 and the order page shows its code). */
(function () {
  "use strict";
  const M = window.Mall, W = M.words, P = window.MallPricing;
  const form = document.getElementById("checkout"), msg = document.getElementById("checkout-msg");
  const KEY = "mall_checkout_key";
  if (!M.session.token()) { document.getElementById("need-signin").hidden = false; form.hidden = true; return; }
  if (!M.cart.lines().length) { msg.textContent = W.empty_cart; document.getElementById("place").disabled = true; }
  const address = M.place.address();
  if (address) {
    document.getElementById("address").value = address.label || "";
    document.getElementById("lat").value = address.lat; document.getElementById("lon").value = address.lon;
  }

  // goods added while out of stock: the order may become a pre-sale (supply due) rather than be refused
  document.getElementById("presale").checked = M.cart.lines().some(function (l) { return l.p; });

  function fulfilment() { return form.querySelector('input[name="fulfilment"]:checked').value; }
  function chosenCoupons() {
    return Array.from(form.querySelectorAll('input[name="coupon"]:checked')).map(function (c) { return c.value; });
  }
  function where() {
    if (fulfilment() === "pickup") return {store_id: document.getElementById("store-select").value};
    const lat = parseFloat(document.getElementById("lat").value), lon = parseFloat(document.getElementById("lon").value);
    if (isNaN(lat) || isNaN(lon)) return null;
    return {location: {lat: lat, lon: lon}};
  }

  /* the slots with their places left (the API counts them; a full one stays listed, disabled, saying why); the
     customer's choice is kept while it is still bookable */
  let lastSlots = "";
  function slotText(s) {
    const when = s.start.slice(5, 16).replace("T", " ") + "–" + s.end.slice(11, 16);
    if (s.full) return when + " · " + W.slot_full;
    return s.left === undefined ? when : when + " · " + P.fmt(W.slot_left, {n: s.left});
  }
  function showSlots(slots) {
    const seen = JSON.stringify(slots.map(function (s) { return [s.start, s.left]; }));
    if (seen === lastSlots) return;
    lastSlots = seen;
    const select = document.getElementById("slot"), was = select.value;
    select.innerHTML = slots.map(function (s) {
      return '<option value="' + M.esc(s.start) + '"' + (s.full ? " disabled" : "") + ' data-left="' +
        (s.left === undefined ? "" : s.left) + '">' + M.esc(slotText(s)) + "</option>";
    }).join("");
    const open = slots.filter(function (s) { return !s.full; });
    const keep = open.find(function (s) { return s.start === was; }) || open[0];
    select.value = keep ? keep.start : "";
    document.getElementById("slot-note").hidden = open.length === slots.length;
  }
  /* delivery: the fee, and from how much it is free (what is still missing shows as a hint under the total) */
  function showTerms(delivery) {
    const terms = document.getElementById("delivery-terms");
    if (!delivery) { terms.textContent = ""; return; }
    terms.textContent = W.delivery_fee + " ¥" + M.yuan(delivery.standard_fee_fen) + " · " +
      P.fmt(W.free_delivery_from, {amount: M.yuan(delivery.free_from_fen)});
  }
  async function price() {
    msg.textContent = "";
    document.getElementById("pickup-part").hidden = fulfilment() !== "pickup";
    document.getElementById("delivery-part").hidden = fulfilment() !== "delivery";
    const place = where();
    if (!place || !M.cart.lines().length) { document.getElementById("place").disabled = true; return null; }
    try {
      const body = Object.assign({fulfilment: fulfilment(), items: M.cart.items(), coupons: chosenCoupons()}, place);
      const p = await M.api("POST", "/cart/price", body);
      P.render(p, document.getElementById("summary"), document.getElementById("hints"));
      showSlots(p.slots);
      showTerms(p.delivery);
      document.getElementById("place").disabled = !document.getElementById("slot").value;  // every slot full
      return p;
    } catch (e) { msg.textContent = e.message; document.getElementById("place").disabled = true; return null; }
  }

  async function wallet() {
    const member = M.session.member();
    try {
      const me = await M.api("GET", "/me");
      document.getElementById("balance").textContent = "(" + W.balance + " ¥" + M.yuan(me.stored_value_fen) + ")";
      document.getElementById("points-have").textContent = "(" + me.points + ")";
      const c = await M.api("GET", "/members/" + encodeURIComponent(member) + "/coupons");
      const usable = c.coupons.filter(function (x) { return x.status === "issued" && x.channels.includes("online"); });
      if (usable.length) {
        document.getElementById("coupons").innerHTML = usable.map(function (x) {
          const v = x.value || {};
          const worth = v.amount_off_fen ? "-¥" + M.yuan(v.amount_off_fen) : v.percent_off_bp ? "-" + v.percent_off_bp / 100 + "%" : "";
          return '<label class="choice"><input type="checkbox" name="coupon" value="' + M.esc(x.code) + '"> ' +
            M.esc(x.name) + " " + M.esc(worth) + (v.min_spend_fen ? " (≥ ¥" + M.yuan(v.min_spend_fen) + ")" : "") + "</label>";
        }).join("");
      }
    } catch (e) { msg.textContent = e.message; }
  }

  form.addEventListener("change", function (ev) {
    if (ev.target.id === "slot" || ev.target.name === "method" || ev.target.id === "points") return;
    price();
  });
  document.getElementById("use-location").addEventListener("click", function () {
    if (!navigator.geolocation) return;
    navigator.geolocation.getCurrentPosition(function (pos) {
      document.getElementById("lat").value = pos.coords.latitude.toFixed(6);
      document.getElementById("lon").value = pos.coords.longitude.toFixed(6);
      price();
    }, function (err) { msg.textContent = err.message || W.error_generic; });
  });

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const place = where();
    const slot = document.getElementById("slot").value;
    if (!place || !slot) { msg.textContent = W.error_generic; return; }
    if (fulfilment() === "delivery") {
      M.place.saveAddress({label: document.getElementById("address").value, lat: place.location.lat, lon: place.location.lon});
    }
    const button = document.getElementById("place");
    button.disabled = true; button.textContent = W.paying;
    const key = sessionStorage.getItem(KEY) || M.uuid();
    sessionStorage.setItem(KEY, key);  // a retry of this attempt (a lost answer) answers the same order
    try {
      const body = Object.assign({fulfilment: fulfilment(), items: M.cart.items(), slot_start: slot,
                                  coupons: chosenCoupons(), presale: document.getElementById("presale").checked}, place);
      const order = await M.api("POST", "/orders", body, {"Idempotency-Key": key});
      sessionStorage.removeItem(KEY);
      M.cart.clear();
      const method = form.querySelector('input[name="method"]:checked').value;
      const points = parseInt(document.getElementById("points").value, 10) || 0;
      try {
        await M.api("POST", "/orders/" + encodeURIComponent(order.order_id) + "/pay",
                    points > 0 ? {method: method, points: points} : {method: method});
      } catch (e) {
        sessionStorage.setItem("mall_flash", e.message);  // the order page says why it is not paid yet
      }
      location.href = "/mall/orders/" + encodeURIComponent(order.order_id);
    } catch (e) {
      if (e.status && e.status < 500) sessionStorage.removeItem(KEY);  // refused: a new attempt may differ
      msg.textContent = e.message; button.disabled = false; button.textContent = W.place_order;
    }
  });

  wallet().then(price);
})();
