/* The promotion book editor (/office/promotions): edits a working copy of the book, saves it as draft revisions,
   previews baskets against it and publishes it, all through the operator API (which validates every rule and names
   the rule and field that is wrong). Times are the chain's local time (UTC+8); money is typed in yuan, sent in fen. */
(function () {
  "use strict";
  const O = window.Office, W = O.words;
  const data = JSON.parse(document.getElementById("editor-data").textContent);
  const TZ_MS = 8 * 3600 * 1000;
  const $ = function (id) { return document.getElementById(id); };
  const copy = function (x) { return JSON.parse(JSON.stringify(x)); };
  const products = {};
  data.catalogue.forEach(function (p) { products[p.sku] = p; });
  const inForce = {};
  data.book.rules.forEach(function (r) { inForce[r.id] = r; });

  let draftId = data.draft ? data.draft.draft_id : null;
  let revision = data.draft ? data.draft.revision : 0;
  let working = data.draft ? copy(data.draft.rule_book) : bookBody(data.book);
  let editing = null;  // the rule being edited (its id in the working book), or null for a new one

  function bookBody(book) {
    const body = {rules: copy(book.rules)};
    if (book.utc_offset_minutes !== undefined) body.utc_offset_minutes = book.utc_offset_minutes;
    return body;
  }
  function byId(rules) { const m = {}; rules.forEach(function (r) { m[r.id] = r; }); return m; }

  /* ---- times and amounts ---- */
  function toLocalInput(ms) {
    if (!ms) return "";
    return new Date(ms + TZ_MS).toISOString().slice(0, 16);
  }
  function fromLocalInput(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(text || "");
    return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) - TZ_MS : null;
  }
  function yuan(fen) { return (fen < 0 ? "-" : "") + (Math.abs(fen) / 100).toFixed(2); }
  function percentToBp(text) {
    const m = /^\s*(\d{1,3})(?:\.(\d{1,2}))?\s*$/.exec(text);
    return m ? parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10) : null;
  }
  function list(text) { return String(text || "").split(/[,，\s]+/).filter(Boolean); }
  function label(input) {
    const l = document.querySelector("label[for='" + input.id + "']");
    return l ? l.textContent.trim() : input.name;
  }
  class Bad extends Error {}

  /* ---- the draft's state and the rules table ---- */
  function changes() {
    const now = byId(working.rules), out = [];
    Object.keys(now).forEach(function (id) {
      if (!inForce[id]) out.push([id, "added"]);
      else if (JSON.stringify(now[id]) !== JSON.stringify(inForce[id])) out.push([id, "changed"]);
    });
    Object.keys(inForce).forEach(function (id) { if (!now[id]) out.push([id, "removed"]); });
    return out;
  }
  function showDraft() {
    const state = $("draft-state"), found = changes(), ul = $("draft-changes");
    state.textContent = draftId ? state.dataset.at.replace("{id}", draftId).replace("{rev}", revision)
      : state.dataset.none.replace("{version}", data.in_force);
    ul.textContent = "";
    found.forEach(function (c) {
      const li = document.createElement("li");
      li.textContent = c[0] + " · " + W["promotions.change." + c[1]];
      ul.appendChild(li);
    });
    $("publish").disabled = !draftId || found.length === 0;
    const changed = {};
    found.forEach(function (c) { changed[c[0]] = true; if (c[1] === "added") addedRow(byId(working.rules)[c[0]]); });
    document.querySelectorAll("#rules tbody tr").forEach(function (tr) {
      tr.querySelector(".draft-mark").hidden = !changed[tr.dataset.rule];
    });
  }

  /* A rule the draft adds has no row of the book in force: it gets one (marked), so it can be found and edited. */
  function addedRow(rule) {
    const body = document.querySelector("#rules tbody");
    if (body.querySelector("tr[data-rule='" + rule.id + "']")) return;
    const tr = document.createElement("tr");
    tr.dataset.rule = rule.id;
    const cells = [rule.id + " " + (rule.name || ""), W["promotions.type." + rule.type] || rule.type, "",
                   (rule.channels || ["offline", "online"]).map(function (c) { return W["promotions.channel." + c]; })
                     .join(W["promotions.sep"]), "", ""];
    const heads = document.querySelectorAll("#rules thead th");
    cells.forEach(function (text, i) { cell(tr, text, heads[i].textContent); });
    const mark = document.createElement("span");
    mark.className = "badge draft-mark";
    mark.textContent = W["promotions.changed"];
    tr.children[4].appendChild(mark);
    const td = document.createElement("td"), button = document.createElement("button");
    button.type = "button"; button.className = "edit"; button.dataset.rule = rule.id;
    button.textContent = W["promotions.edit"];
    button.addEventListener("click", function () { openEditor(copy(byId(working.rules)[rule.id])); });
    td.appendChild(button); tr.appendChild(td);
    body.insertBefore(tr, body.firstChild);
  }

  $("rule-filter").addEventListener("input", function (ev) {
    const q = ev.target.value.trim().toLowerCase();
    document.querySelectorAll("#rules tbody tr").forEach(function (tr) {
      tr.hidden = q !== "" && !tr.textContent.toLowerCase().includes(q);
    });
  });

  /* ---- the editor: one fieldset per rule type ---- */
  const form = $("rule-form");
  function typeFields(type) { return form.querySelector(".type-fields[data-type='" + type + "']"); }

  function openEditor(rule) {
    form.reset();
    $("rule-msg").textContent = "";
    editing = rule.id || null;
    $("f-type").value = rule.type;
    $("editor-rule").textContent = (rule.id || "") + " · " + W["promotions.type." + rule.type];
    $("f-id").value = rule.id || "";
    $("f-name").value = rule.name || "";
    $("f-priority").value = rule.priority || "";
    $("f-group").value = rule.group || "";
    const channels = rule.channels || ["offline", "online"];
    $("f-ch-offline").checked = channels.includes("offline");
    $("f-ch-online").checked = channels.includes("online");
    $("f-starts").value = toLocalInput(rule.starts_ms);
    $("f-ends").value = toLocalInput(rule.ends_ms);
    $("f-daily").value = (rule.daily || []).join(", ");
    $("f-skus").value = (rule.skus || []).join(", ");
    $("f-categories").value = (rule.categories || []).join(", ");
    $("f-stores").value = (rule.stores || []).join(", ");
    $("f-levels").value = (rule.member_levels || []).join(", ");
    $("f-budget").value = rule.budget_fen ? yuan(rule.budget_fen) : "";
    $("f-limit").value = rule.per_member_limit || "";
    form.querySelectorAll(".type-fields").forEach(function (fs) {
      const mine = fs.dataset.type === rule.type;
      fs.hidden = !mine; fs.disabled = !mine;
    });
    typeFields(rule.type).querySelectorAll("[data-kind]").forEach(function (input) {
      const v = rule[input.name], kind = input.dataset.kind;
      if (kind === "bool") input.checked = !!v;
      else if (kind === "tiers") input.value = (v || []).map(function (t) { return yuan(t.spend_fen) + ":" + yuan(t.off_fen); }).join("\n");
      else if (v === undefined || v === null || v === "" || (v === 0 && kind !== "int")) input.value = "";
      else if (kind === "yuan") input.value = yuan(v);
      else if (kind === "percent") input.value = String(v / 100);
      else input.value = String(v);
    });
    $("rule-remove").hidden = !editing;
    $("editor").hidden = false;
    $("f-name").focus();
    $("editor").scrollIntoView({block: "start"});
  }

  function setOrDrop(rule, name, value, empty) {
    if (value === empty || value === "" || value === null || (Array.isArray(value) && value.length === 0)) delete rule[name];
    else rule[name] = value;
  }

  /* The rule as the form says it, over what it was (fields the form does not show are kept). */
  function ruleFromForm() {
    const type = $("f-type").value;
    const rule = Object.assign({}, editing ? byId(working.rules)[editing] : {}, {type: type});
    rule.id = $("f-id").value.trim();
    rule.name = $("f-name").value.trim();
    const priority = $("f-priority").value.trim();
    setOrDrop(rule, "priority", priority === "" ? 0 : parseInt(priority, 10), 0);
    setOrDrop(rule, "group", $("f-group").value.trim(), "");
    const channels = ["offline", "online"].filter(function (c) { return $("f-ch-" + c).checked; });
    if (channels.length === 2) delete rule.channels; else rule.channels = channels;
    const starts = $("f-starts").value, ends = $("f-ends").value;
    setOrDrop(rule, "starts_ms", starts ? fromLocalInput(starts) : 0, 0);
    setOrDrop(rule, "ends_ms", ends ? fromLocalInput(ends) : 0, 0);
    setOrDrop(rule, "daily", list($("f-daily").value));
    setOrDrop(rule, "skus", list($("f-skus").value));
    setOrDrop(rule, "categories", list($("f-categories").value));
    setOrDrop(rule, "stores", list($("f-stores").value));
    setOrDrop(rule, "member_levels", list($("f-levels").value));
    const budget = $("f-budget").value.trim();
    if (budget && O.fen(budget) === null) throw new Bad(label($("f-budget")) + ": " + W["promotions.bad_amount"]);
    setOrDrop(rule, "budget_fen", budget ? O.fen(budget) : 0, 0);
    const limit = $("f-limit").value.trim();
    setOrDrop(rule, "per_member_limit", limit ? parseInt(limit, 10) : 0, 0);
    typeFields(type).querySelectorAll("[data-kind]").forEach(function (input) {
      const kind = input.dataset.kind, text = input.value.trim(), name = input.name;
      if (kind === "bool") { setOrDrop(rule, name, input.checked, false); return; }
      if (text === "") { delete rule[name]; return; }
      if (kind === "yuan") {
        if (O.fen(text) === null) throw new Bad(label(input) + ": " + W["promotions.bad_amount"]);
        rule[name] = O.fen(text);
      } else if (kind === "percent") {
        if (percentToBp(text) === null) throw new Bad(label(input) + ": " + W["promotions.bad_percent"]);
        rule[name] = percentToBp(text);
      } else if (kind === "int") {
        if (!/^-?\d+$/.test(text)) throw new Bad(label(input) + ": " + W["promotions.bad_number"]);
        rule[name] = parseInt(text, 10);
      } else if (kind === "tiers") {
        rule[name] = text.split(/\n+/).filter(Boolean).map(function (line) {
          const parts = line.split(/[:：]/);
          if (parts.length !== 2 || O.fen(parts[0]) === null || O.fen(parts[1]) === null)
            throw new Bad(label(input) + ": " + W["promotions.bad_tier"]);
          return {spend_fen: O.fen(parts[0]), off_fen: O.fen(parts[1])};
        });
      } else rule[name] = text;
    });
    return rule;
  }

  /* Save the working book with `rules` as the draft's next revision (the API validates it whole). */
  async function saveDraft(rules) {
    if (!draftId) draftId = "d" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
    const body = {draft_id: draftId, revision: revision + 1, rule_book: Object.assign({}, working, {rules: rules})};
    const saved = await O.api("POST", "/operator/rule-book/drafts", body);
    working = saved.rule_book; revision = saved.revision;
    showDraft();
    return saved;
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const alert = $("rule-msg"), button = $("rule-save");
    alert.textContent = ""; button.disabled = true;
    try {
      const rule = ruleFromForm();
      const rules = working.rules.filter(function (r) { return r.id !== editing && r.id !== rule.id; });
      const at = working.rules.findIndex(function (r) { return r.id === editing; });
      rules.splice(at < 0 ? rules.length : at, 0, rule);
      await saveDraft(rules);
      $("editor").hidden = true;
      O.say(W["promotions.saved"].replace("{id}", rule.id).replace("{rev}", revision));
    } catch (e) {
      alert.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });
  $("rule-remove").addEventListener("click", async function () {
    try {
      await saveDraft(working.rules.filter(function (r) { return r.id !== editing; }));
      $("editor").hidden = true;
      O.say(W["promotions.removed"].replace("{id}", editing));
    } catch (e) { $("rule-msg").textContent = e.message; }
  });
  $("rule-cancel").addEventListener("click", function () { $("editor").hidden = true; });
  document.querySelectorAll("#rules button.edit").forEach(function (b) {
    b.addEventListener("click", function () {
      const rule = byId(working.rules)[b.dataset.rule] || inForce[b.dataset.rule];
      openEditor(copy(rule));
    });
  });
  $("new-rule").addEventListener("click", function () { openEditor({type: $("new-type").value}); });

  /* ---- publishing ---- */
  O.form($("publish-form"), {
    method: "POST",
    path: function () { return "/operator/rule-book/drafts/" + encodeURIComponent(draftId) + "/publish"; },
    body: function () { return {revision: revision}; },
    done: function (answer) {
      const msg = $("publish-msg");
      msg.textContent = W["promotions.published"].replace("{version}", answer.rule_book_version);
      msg.classList.add("ok");
      $("publish").hidden = true;  // published: this draft is the book in force now (a reload shows it)
      $("reload").hidden = false;
    },
  });

  /* ---- the preview ---- */
  const lines = $("p-lines");
  let lineNo = 0;
  function addLine(sku, qty) {
    lineNo += 1;
    const li = document.createElement("li");
    li.className = "row line";
    li.innerHTML = "<div><label for='p-sku-" + lineNo + "'></label><input id='p-sku-" + lineNo + "' class='p-sku' list='skus'></div>" +
      "<div><label for='p-qty-" + lineNo + "'></label><input id='p-qty-" + lineNo + "' class='p-qty' type='number' min='1' step='1'></div>" +
      "<div><button type='button' class='p-remove'></button></div>";
    li.querySelector("label[for^='p-sku']").textContent = W["promotions.p.item"];
    li.querySelector("label[for^='p-qty']").textContent = W["promotions.p.qty_hint"];
    const remove = li.querySelector(".p-remove");
    remove.textContent = W["promotions.p.remove_line"];
    remove.addEventListener("click", function () { li.remove(); });
    li.querySelector(".p-sku").value = sku || "";
    li.querySelector(".p-qty").value = qty || 1;
    lines.appendChild(li);
    return li;
  }
  $("p-add").addEventListener("click", function () { addLine().querySelector(".p-sku").focus(); });
  addLine();
  $("p-at").value = toLocalInput(Date.now());

  function cell(tr, text, labelText, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (labelText) td.dataset.label = labelText;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function showPreview(answer) {
    $("p-subtotal").textContent = yuan(answer.subtotal_fen);
    $("p-discount").textContent = yuan(answer.discount_fen);
    $("p-total").textContent = yuan(answer.total_fen);
    const lt = $("p-line-table").querySelector("tbody");
    lt.textContent = "";
    answer.lines.forEach(function (l) {
      const tr = document.createElement("tr");
      cell(tr, l.name + " (" + l.sku + ")", W["promotions.p.item"]);
      cell(tr, l.weight_g ? l.weight_g + " g" : String(l.qty), W["promotions.p.qty"], "num");
      cell(tr, yuan(l.list_fen), W["promotions.p.list"], "num");
      cell(tr, yuan(l.amount_fen), W["promotions.p.pay"], "num");
      cell(tr, l.rules.join(", ") || "—", W["promotions.rules"]);
      lt.appendChild(tr);
    });
    (answer.refused_lines || []).forEach(function (r) {
      const tr = document.createElement("tr");
      tr.className = "refused";
      cell(tr, (r.sku || "?") + " · " + W["promotions.p.refused"], W["promotions.p.item"]);
      cell(tr, r.reason, W["promotions.p.why"]);
      lt.appendChild(tr);
    });
    const rt = $("p-rule-table").querySelector("tbody");
    rt.textContent = "";
    const shown = answer.rules.filter(function (r) { return r.in_scope || r.effect === "applied"; });
    shown.sort(function (a, b) { return (b.effect === "applied") - (a.effect === "applied"); });
    shown.forEach(function (r) {
      const tr = document.createElement("tr");
      tr.dataset.rule = r.rule_id; tr.dataset.effect = r.effect;
      cell(tr, r.rule_id + " " + r.name, W["promotions.rule"]);
      cell(tr, W["promotions.effect." + r.effect] || r.effect, W["promotions.p.effect"]);
      cell(tr, r.saving_fen ? yuan(r.saving_fen) : "—", W["promotions.p.saving"], "num");
      cell(tr, r.why, W["promotions.p.why"]);
      rt.appendChild(tr);
    });
    (answer.member_price || []).forEach(function (m) {
      const tr = document.createElement("tr");
      tr.dataset.effect = "applied";
      cell(tr, m.name, W["promotions.rule"]);
      cell(tr, W["promotions.effect.applied"], W["promotions.p.effect"]);
      cell(tr, yuan(m.saving_fen), W["promotions.p.saving"], "num");
      cell(tr, "", W["promotions.p.why"]);
      rt.appendChild(tr);
    });
    $("p-hidden").textContent = W["promotions.p.others"].replace("{n}", answer.rules.length - shown.length);
    $("p-result").hidden = false;
  }

  $("preview-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const alert = $("preview-msg"), button = $("p-run");
    alert.textContent = ""; button.disabled = true;
    try {
      const basket = [];
      lines.querySelectorAll("li").forEach(function (li) {
        const sku = li.querySelector(".p-sku").value.trim(), qty = parseInt(li.querySelector(".p-qty").value, 10);
        if (!sku) return;
        const p = products[sku];
        basket.push(p && p.weighed ? {sku: sku, weight_g: qty} : {sku: sku, qty: qty});
      });
      if (basket.length === 0) throw new Bad(W["promotions.p.no_lines"]);
      const body = {channel: $("p-channel").value, store_id: $("p-store").value,
                    member_level: $("p-level").value || null, lines: basket};
      const at = $("p-at").value;
      if (at) body.at = at + ":00+08:00";
      if ($("p-book").value === "draft") body.rule_book = working;
      showPreview(await O.api("POST", "/operator/rule-book/preview", body));
    } catch (e) {
      alert.textContent = e.message;
    } finally {
      button.disabled = false;
    }
  });

  showDraft();
})();
