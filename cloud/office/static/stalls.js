/* The market stalls' pages (cloud/office/stalls.py): create a stall (HQ), change a stall product's name and price,
   download the settlement's CSV. Every write is the operator API's; what went wrong is said in the form. */
(function () {
  "use strict";
  const O = window.Office, W = O.words;

  const create = document.getElementById("create-stall");
  if (create) O.form(create, {
    method: "POST", path: "/operator/stalls",
    body: function (d) {
      const pct = O.fen(d.get("commission"));  // percent with two decimals = basis points, like yuan = fen
      const fee = O.fen(d.get("monthly_fee"));
      if (pct === null) throw new O.OfficeError(W["stalls.bad_commission"], 0);
      if (fee === null) throw new O.OfficeError(W["stalls.bad_fee"], 0);
      return {stall_id: d.get("stall_id").trim(), store_id: d.get("store_id"), name: d.get("name").trim(),
              owner: d.get("owner").trim(), commission_bp: pct, monthly_fee_fen: fee};
    },
    done: function (stall) { location.href = "/office/stalls/" + encodeURIComponent(stall.stall_id); },
  });

  const stall = document.getElementById("stall-name");
  document.querySelectorAll(".product-form").forEach(function (f) {
    O.form(f, {
      method: "PUT",
      path: function () { return "/operator/stalls/" + encodeURIComponent(stall.dataset.stall) + "/products/" +
                                 encodeURIComponent(f.dataset.sku); },
      body: function (d) {
        const price = O.fen(d.get("price"));
        if (price === null || price <= 0) throw new O.OfficeError(W["stalls.bad_price"], 0);
        return {name: d.get("name").trim(), price_fen: price};
      },
      done: function () {
        const alert = f.querySelector("[role=alert]");
        alert.textContent = W["stalls.saved"]; alert.classList.add("ok");
      },
    });
  });

  const csv = document.getElementById("csv");
  if (csv) csv.addEventListener("click", async function () {
    try {
      const text = await O.api("GET", csv.dataset.path, null, {"Accept": "text/csv"});
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
      link.download = "settlement-" + stall.dataset.stall + ".csv";
      document.body.appendChild(link); link.click(); link.remove();
    } catch (e) { O.say(e.message, true); }
  });
})();
