/* The catalogue and prices pages (cloud/office/catalogue.py): every change through the operator API
   (cloud/http/routes/prices.py); what went wrong is said in the form's alert, as the API's sentence. */
(function () {
  "use strict";
  const O = window.Office, W = O.words;
  const XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

  function saved(path) { location.href = (path || location.pathname) + "?saved=1"; }
  function fail(text) { throw new O.OfficeError(text, 422, null); }

  /* "gold:9.00; silver:9.50" -> [{level, price_fen}] (yuan typed, fen sent) */
  function memberPrices(text) {
    const out = [];
    for (const part of String(text || "").split(/[;；,，]/)) {
      if (!part.trim()) continue;
      const m = /^\s*([a-z][a-z0-9_]{0,19})\s*[:：]\s*(\S+)\s*$/.exec(part);
      const fen = m ? O.fen(m[2]) : null;
      if (!m || fen === null) fail(W["catalogue.bad_member_prices"] + " (" + part.trim() + ")");
      out.push({level: m[1], price_fen: fen});
    }
    return out;
  }
  function price(text) {
    const fen = O.fen(text);
    if (fen === null || fen <= 0) fail(W["catalogue.bad_price"] + " (" + String(text).trim() + ")");
    return fen;
  }

  const data = document.getElementById("product-data");
  const page = data ? JSON.parse(data.textContent) : null;
  const sku = page ? page.sku : null;
  const base = sku ? "/products/" + encodeURIComponent(sku) : null;

  /* the list page: a new product opens its (empty) page */
  const newForm = document.getElementById("new-form");
  if (newForm) newForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const value = newForm.elements.sku.value.trim();
    const alert = newForm.querySelector("[role=alert]");
    if (!/^[A-Za-z0-9_.\-]{1,40}$/.test(value)) { alert.textContent = W["catalogue.bad_sku"]; return; }
    location.href = "/office/catalogue/" + encodeURIComponent(value);
  });

  const productForm = document.getElementById("product-form");
  if (productForm && base) O.form(productForm, {
    method: "PUT", path: base,
    body: function (fd) {
      const keep = page.product || {};  // fields the form does not show (supplier, cost, pack) are kept
      return Object.assign({}, keep, {
        sku: sku, name: fd.get("name").trim(), category: fd.get("category").trim(), unit: fd.get("unit"),
        price_fen: price(fd.get("price")), member_prices: memberPrices(fd.get("member")),
        channels: fd.getAll("channels"), plu: fd.get("plu").trim(), gtin: fd.get("gtin").trim(),
        shelf_life_days: parseInt(fd.get("shelf_life_days") || "0", 10) || 0,
      });
    },
    done: function () { saved(); },
  });

  /* a price: the chain's now (the product), a store's own now, or either from a moment on (a scheduled change);
     three endpoints, so this form calls O.api itself */
  const priceForm = document.getElementById("price-form");
  if (priceForm && base) {
    const msg = priceForm.querySelector("[role=alert]");
    priceForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const fd = new FormData(priceForm), button = priceForm.querySelector("[type=submit]");
      msg.textContent = ""; button.disabled = true;
      try {
        const store = fd.get("store_id"), when = fd.get("when");
        const body = {price_fen: price(fd.get("price")), member_prices: memberPrices(fd.get("member"))};
        if (when) {  // at the chain's time (UTC+8)
          body.effective_at = when + (when.length === 16 ? ":00" : "") + "+08:00";
          body.change_id = "pc-" + (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()));
          if (store) body.store_id = store;
          await O.api("POST", base + "/price-changes", body);
        } else if (store) {
          await O.api("PUT", base + "/store-prices/" + encodeURIComponent(store), body);
        } else {
          const product = Object.assign({}, page.product, {price_fen: body.price_fen});
          if (body.member_prices.length) product.member_prices = body.member_prices;
          await O.api("PUT", base, product);
        }
        saved();
      } catch (e) { msg.textContent = e.message; }
      finally { button.disabled = false; }
    });
  }

  document.querySelectorAll(".remove-entry").forEach(function (button) {
    button.addEventListener("click", async function () {
      button.disabled = true;
      try { await O.api("DELETE", base + "/price-changes/" + encodeURIComponent(button.dataset.change)); saved(); }
      catch (e) { O.say(e.message, true); button.disabled = false; }
    });
  });

  /* export: fetched with the session's token, then saved as a file */
  async function download(format) {
    const r = await fetch("/products/export?format=" + format, {headers: {"Authorization": "Bearer " + O.session.token()}});
    if (!r.ok) { O.say(W["catalogue.export_failed"] + " (HTTP " + r.status + ")", true); return; }
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url; a.download = "products." + format; document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }
  ["csv", "xlsx"].forEach(function (format) {
    const b = document.getElementById("export-" + format);
    if (b) b.addEventListener("click", function () { download(format); });
  });

  /* import: a preview (dry run) of every row and error first; apply is offered only for a sheet without errors */
  const importForm = document.getElementById("import-form");
  if (importForm) {
    const msg = document.getElementById("import-msg"), apply = document.getElementById("apply");
    const result = document.getElementById("import-result");
    let file = null;
    function cell(tr, label, text, num) {
      const td = document.createElement("td");
      td.dataset.label = label; td.textContent = text; if (num) td.className = "num";
      tr.appendChild(td);
    }
    function show(answer) {
      const errors = document.querySelector("#import-errors tbody"), rows = document.querySelector("#import-rows tbody");
      errors.textContent = ""; rows.textContent = "";
      for (const e of answer.errors || []) {
        const tr = document.createElement("tr");
        cell(tr, W["catalogue.row"], String(e.row), true);
        cell(tr, W["catalogue.column"], e.column || "—");
        cell(tr, W["catalogue.problem"], e.detail);
        errors.appendChild(tr);
      }
      for (const r of answer.rows || []) {
        const tr = document.createElement("tr");
        cell(tr, W["catalogue.row"], String(r.row), true);
        cell(tr, W["catalogue.sku"], r.sku);
        cell(tr, W["catalogue.name"], r.name || "");
        cell(tr, W["catalogue.chain_price"], r.price_fen != null ? "¥" + (r.price_fen / 100).toFixed(2) : "", true);
        cell(tr, W["catalogue.action"], W["catalogue.action_" + r.action] || r.action);
        rows.appendChild(tr);
      }
      document.getElementById("import-errors").hidden = !(answer.errors || []).length;
      result.hidden = false;
    }
    async function send(dryRun) {
      const kind = file.name.toLowerCase().endsWith(".xlsx") ? XLSX : "text/csv";
      return O.api("POST", "/products/import" + (dryRun ? "?dry_run=true" : ""), file, {"Content-Type": kind});
    }
    importForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      msg.textContent = ""; msg.classList.remove("ok"); apply.disabled = true;
      file = importForm.elements.sheet.files[0] || null;
      if (!file) { msg.textContent = W["catalogue.choose_file"]; return; }
      try {
        const answer = await send(true);
        show(answer);
        if (answer.valid) { msg.textContent = W["catalogue.preview_ok"]; msg.classList.add("ok"); apply.disabled = false; }
        else msg.textContent = W["catalogue.preview_bad"].replace("{n}", String(answer.error_count));
      } catch (e) { msg.textContent = e.message; }
    });
    apply.addEventListener("click", async function () {
      apply.disabled = true; msg.textContent = "";
      try { await send(false); saved("/office/catalogue"); }
      catch (e) { msg.textContent = e.message; if (e.problem && e.problem.errors) show({errors: e.problem.errors, rows: []}); }
    });
  }
})();
