/* Local services in the back office, through the operator API only: the whole service book saved with
   PUT /operator/stores/{id}/services (built from the editable rows; empty new rows left out), and a booking
   cancelled with POST /bookings/{id}/cancel. A refusal is shown as its sentence in the form's alert. */
(function () {
  "use strict";
  const O = window.Office, W = O.words;
  const form = document.getElementById("book-form");
  if (!form) return;
  const store = form.dataset.store;

  function value(row, name) { const el = row.querySelector("[name=" + name + "]"); return el ? el.value.trim() : ""; }
  function rows(id) { return Array.from(document.querySelectorAll("#" + id + " tbody tr")); }

  /* The book from the rows; a number that is not one is sent as typed, so the API's sentence names it. */
  function book() {
    const staff = rows("staff-rows").filter(function (r) { return value(r, "staff_id") || value(r, "staff_name"); })
      .map(function (r) { return {staff_id: value(r, "staff_id"), name: value(r, "staff_name")}; });
    const services = rows("service-rows").filter(function (r) { return value(r, "service_id") || value(r, "name"); })
      .map(function (r) {
        const price = O.fen(value(r, "price") || "0"), minutes = Number(value(r, "duration_min"));
        return {service_id: value(r, "service_id"), name: value(r, "name"), name_en: value(r, "name_en"),
                duration_min: Number.isInteger(minutes) ? minutes : value(r, "duration_min"),
                price_fen: price === null ? value(r, "price") : price,
                staff: value(r, "staff").split(/[,，\s]+/).filter(Boolean)};
      });
    const schedule = rows("window-rows").filter(function (r) { return value(r, "weekday"); })
      .map(function (r) { return {weekday: Number(value(r, "weekday")), opens: value(r, "opens"), closes: value(r, "closes")}; });
    return {services: services, staff: staff, schedule: schedule};
  }

  O.form(form, {method: "PUT", path: "/operator/stores/" + encodeURIComponent(store) + "/services", body: book,
    done: function (answer) {
      const alert = document.getElementById("book-alert");
      alert.textContent = W["services.saved"].replace("{version}", answer.version);
      alert.classList.add("ok");
      setTimeout(function () { location.reload(); }, 600);  // the day's schedule follows the saved staff
    }});

  form.addEventListener("click", function (ev) {
    const target = ev.target;
    if (target.classList.contains("remove")) {
      const row = target.closest("tr"), body = row.parentElement;
      if (body.children.length > 1) row.remove();
      else row.querySelectorAll("input").forEach(function (i) { i.value = ""; });
    } else if (target.classList.contains("add")) {
      const body = document.querySelector("#" + target.dataset.rows + " tbody");
      const copy = body.lastElementChild.cloneNode(true);
      copy.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      copy.querySelectorAll("select").forEach(function (s) { s.selectedIndex = 0; });
      body.appendChild(copy);
      const first = copy.querySelector("input, select");
      if (first) first.focus();
    }
  });

  const schedule = document.getElementById("schedule");
  schedule.addEventListener("click", async function (ev) {
    const id = ev.target.dataset && ev.target.dataset.cancel;
    if (!id || !window.confirm(W["services.cancel_confirm"])) return;
    ev.target.disabled = true;
    try {
      await O.api("POST", "/bookings/" + encodeURIComponent(id) + "/cancel", {});
      location.reload();
    } catch (e) {
      document.getElementById("schedule-alert").textContent = e.message;
      ev.target.disabled = false;
    }
  });
})();
