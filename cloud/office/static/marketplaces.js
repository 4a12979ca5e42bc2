/* The marketplaces page's one write: a marketplace's share of the store's online escrow, through the public
   PUT /stores/{id}/marketplaces/{m}/share (it validates, audits and decides by role; a share past 100% of a SKU is
   answered with a sentence naming the SKU and each channel's share). */
(function () {
  "use strict";
  const W = Office.words;
  const form = document.getElementById("share-form");
  if (!form) return;
  Office.form(form, {
    method: "PUT",
    path: function (d) {
      const market = String(d.get("marketplace") || "").trim();
      if (!/^[a-z0-9_-]{1,24}$/.test(market)) throw new Office.OfficeError(W["marketplaces.bad_marketplace"], 0);
      return "/stores/" + encodeURIComponent(form.dataset.store) + "/marketplaces/" + encodeURIComponent(market) + "/share";
    },
    body: function (d) {
      const t = String(d.get("pct") || "").trim();
      const pct = Number(t);
      if (!t || !Number.isFinite(pct) || pct < 0 || pct > 100) throw new Office.OfficeError(W["marketplaces.bad_pct"], 0);
      const body = {ratio_bp: Math.round(pct * 100)};
      body[d.get("scope")] = String(d.get("key") || "").trim();
      return body;
    },
    done: function (answer) {
      const msg = document.getElementById("share-msg");
      msg.textContent = W["office.saved"] + "：" + answer.marketplace + " " + (answer.ratio_bp / 100) + "%";
      msg.classList.add("ok");
      setTimeout(function () { location.reload(); }, 400);
    },
  });
})();
