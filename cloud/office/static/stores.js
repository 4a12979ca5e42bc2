/* One store's page: the form is sent whole through the public PUT /stores/{id} (it validates, audits and answers a
   problem naming what was wrong; a store manager on another store's page gets its 403 as a sentence). */
(function () {
  "use strict";
  const form = document.getElementById("store-form");
  if (!form) return;
  const W = Office.words;
  function int(text, field) {
    const t = String(text).trim();
    if (!/^-?\d+$/.test(t)) throw new Office.OfficeError(W["stores.bad_number"] + "：" + W["stores." + field], 0);
    return parseInt(t, 10);
  }
  function num(text, field) {
    const n = Number(String(text).trim());
    if (String(text).trim() === "" || !Number.isFinite(n)) throw new Office.OfficeError(W["stores.bad_number"] + "：" + W["stores." + field], 0);
    return n;
  }
  function money(text, field) {
    const f = Office.fen(text);
    if (f === null) throw new Office.OfficeError(W["stores.bad_money"] + "：" + W["stores." + field], 0);
    return f;
  }
  Office.form(form, {
    method: "PUT",
    path: "/stores/" + encodeURIComponent(form.dataset.store),
    body: function (d) {
      return {
        name: form.dataset.name, lat: num(d.get("lat"), "lat"), lon: num(d.get("lon"), "lon"),
        opens: d.get("opens"), closes: d.get("closes"),
        pickup_radius_m: int(d.get("pickup_radius_m"), "pickup_radius"),
        delivery_radius_m: int(d.get("delivery_radius_m"), "delivery_radius"),
        slot_minutes: int(d.get("slot_minutes"), "slot_minutes"),
        slot_capacity: int(d.get("slot_capacity"), "slot_capacity"),
        delivery_fee_fen: money(d.get("delivery_fee"), "delivery_fee"),
        free_delivery_from_fen: money(d.get("free_delivery_from"), "free_from"),
        slot_cutoff_min: parseInt(form.dataset.cutoff, 10),
        // only HQ opens or closes a store: a manager's box is disabled (not sent) and the store stays as it is
        ...(document.getElementById("open").disabled ? {} : {open: d.get("open") === "on"}),
      };
    },
    done: function () {
      const msg = document.getElementById("store-msg");
      msg.textContent = W["office.saved"]; msg.classList.add("ok");
    },
  });
})();
