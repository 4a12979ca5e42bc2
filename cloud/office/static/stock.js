/* The stock policy page's writes, each through the public operator API (it validates, audits and decides by role):
   the allocation ratio (till/online, as HQ says it: 70/30), reorder points, and transfer decisions. */
(function () {
  "use strict";
  const W = Office.words;
  function reload() { setTimeout(function () { location.reload(); }, 400); }
  function whole(text, word) {
    const t = String(text || "").trim();
    if (!/^\d+$/.test(t)) throw new Office.OfficeError(W["stock.bad_number"] + "：" + W[word], 0);
    return parseInt(t, 10);
  }

  const alloc = document.getElementById("alloc-form");
  if (alloc) {
    const till = document.getElementById("a-till"), online = document.getElementById("a-online");
    // one share follows the other: they always add up to 100
    till.addEventListener("input", function () { if (/^\d+$/.test(till.value) && +till.value <= 100) online.value = 100 - till.value; });
    online.addEventListener("input", function () { if (/^\d+$/.test(online.value) && +online.value <= 100) till.value = 100 - online.value; });
    Office.form(alloc, {
      method: "PUT",
      path: "/stores/" + encodeURIComponent(alloc.dataset.store) + "/allocation",
      body: function (d) {
        const t = whole(d.get("till"), "stock.till_pct"), o = whole(d.get("online"), "stock.online_pct");
        if (t + o !== 100) throw new Office.OfficeError(W["stock.shares_add_up"], 0);
        const body = {ratio_bp: o * 100};
        body[d.get("scope")] = String(d.get("key") || "").trim();
        return body;
      },
      done: function (answer) {
        const msg = document.getElementById("alloc-msg");
        msg.textContent = W["office.saved"] + "：" + (100 - answer.ratio_bp / 100) + "/" + (answer.ratio_bp / 100) +
          (answer.store_told ? "" : " · " + W["stock.store_told_later"]);
        msg.classList.add("ok");
        reload();
      },
    });
  }

  const points = document.getElementById("points-form");
  if (points) {
    Office.form(points, {
      method: "PUT",
      path: "/stores/" + encodeURIComponent(points.dataset.store) + "/reorder-points",
      body: function (d) {
        return {items: [{sku: String(d.get("sku") || "").trim(),
                         reorder_point: whole(d.get("reorder_point"), "stock.reorder_point"),
                         target: whole(d.get("target"), "stock.target")}]};
      },
      done: reload,
    });
  }

  document.querySelectorAll("form.decide").forEach(function (form) {
    let decision = "approve";
    form.querySelectorAll("button[name=decision]").forEach(function (b) {
      b.addEventListener("click", function () { decision = b.value; });
    });
    Office.form(form, {
      path: "/operator/transfers/" + encodeURIComponent(form.dataset.transfer) + "/decision",
      body: function (d) {
        const reason = String(d.get("reason") || "").trim();
        if (decision === "refuse" && !reason) throw new Office.OfficeError(W["stock.say_why"], 0);
        return {decision: decision, reason: reason};
      },
      done: reload,
    });
  });
})();
