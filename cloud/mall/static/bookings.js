/* Local services booking, through the public API only: book a free time (POST /bookings, one booking_id made per
   attempt and kept until the API answered, so a retry never books twice), list the member's bookings
   (GET /members/{id}/bookings) and cancel one (POST /bookings/{id}/cancel). A time someone else took first is
   answered with the mall's own sentence (the problem's reason "taken"), and the day's times are read again. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  function fill(t, values) {
    return Object.keys(values).reduce(function (s, k) { return s.split("{" + k + "}").join(String(values[k])); }, t);
  }
  function why(e) {
    const reason = e.problem && e.problem.reason;
    if (reason === "taken") return W.svc_taken;
    if (reason === "not_offered") return W.svc_not_offered;
    if (reason === "too_many") return W.svc_too_many;
    return e.message;
  }

  const service = document.getElementById("service");
  if (service) {
    const form = document.getElementById("book-form"), msg = document.getElementById("book-msg");
    const say = function (text) { msg.textContent = text || ""; msg.classList.toggle("error", !!text); };
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      if (!M.session.token()) { location.href = "/mall/signin?next=" + encodeURIComponent(location.pathname + location.search); return; }
      const picked = form.querySelector("input[name=start]:checked");
      if (!picked) { say(W.svc_choose_time); return; }
      const attempt = "booking_" + service.dataset.store + "_" + service.dataset.service + "_" + picked.value;
      let id = sessionStorage.getItem(attempt);
      if (!id) { id = "B" + M.uuid().replace(/-/g, ""); sessionStorage.setItem(attempt, id); }
      const button = document.getElementById("book");
      button.disabled = true; say(""); button.textContent = W.svc_booking;
      try {
        await M.api("POST", "/bookings", {booking_id: id, store_id: service.dataset.store,
                                          service_id: service.dataset.service, start: picked.value});
        sessionStorage.removeItem(attempt);
        const done = document.getElementById("booked");
        done.textContent = fill(W.svc_booked, {when: picked.dataset.local});
        done.hidden = false; form.hidden = true;
      } catch (e) {
        if (e.status && e.status < 500) sessionStorage.removeItem(attempt);
        say(why(e));
        if (e.problem && e.problem.reason === "taken") {  // read the day's times again: the taken one is gone
          try {
            const fresh = await M.api("GET", "/stores/" + encodeURIComponent(service.dataset.store) + "/services/" +
              encodeURIComponent(service.dataset.service) + "/slots?date=" + encodeURIComponent(service.dataset.day));
            const open = new Set(fresh.slots.map(function (s) { return s.start; }));
            form.querySelectorAll("input[name=start]").forEach(function (input) {
              if (!open.has(input.value)) { input.checked = false; input.disabled = true; input.parentElement.hidden = true; }
            });
          } catch (ignored) { /* the sentence stands */ }
        }
      }
      button.disabled = false; button.textContent = W.svc_book;
    });
  }

  const list = document.getElementById("bookings");
  if (!list) return;
  const listMsg = document.getElementById("bookings-msg");
  async function load() {
    if (!M.session.token()) { location.href = "/mall/signin?next=" + encodeURIComponent(location.pathname); return; }
    try {
      const answer = await M.api("GET", "/members/" + encodeURIComponent(M.session.member()) + "/bookings");
      if (!answer.bookings.length) { list.innerHTML = "<li>" + M.esc(W.svc_no_bookings) + "</li>"; return; }
      const en = document.documentElement.lang === "en";
      list.innerHTML = answer.bookings.map(function (b) {
        const price = b.price_fen ? "¥" + M.yuan(b.price_fen) + " (" + W.svc_pay_at_store + ")" : W.svc_free;
        return '<li data-booking="' + M.esc(b.booking_id) + '" data-status="' + M.esc(b.status) + '"><span><strong>' +
          M.esc(en ? b.service_name_en : b.service_name) + "</strong> · " + M.esc(b.local_start) + "<br><small>" +
          M.esc(W.svc_with) + " " + M.esc(b.staff_name) + " · " + M.esc(price) + " · " +
          M.esc(W["svc_status_" + b.status] || b.status) + "</small></span>" +
          (b.status === "booked" ? '<button type="button" data-cancel="' + M.esc(b.booking_id) + '">' +
            M.esc(W.svc_cancel) + "</button>" : "") + "</li>";
      }).join("");
    } catch (e) { listMsg.textContent = e.message; listMsg.classList.add("error"); }
  }
  list.addEventListener("click", async function (ev) {
    const id = ev.target && ev.target.dataset && ev.target.dataset.cancel;
    if (!id) return;
    ev.target.disabled = true;
    try {
      await M.api("POST", "/bookings/" + encodeURIComponent(id) + "/cancel", {});
      M.flash(W.svc_cancelled, false);
    } catch (e) { listMsg.textContent = e.message; listMsg.classList.add("error"); }
    await load();
  });
  load();
})();
