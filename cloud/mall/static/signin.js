/* Sign-in by phone and one-time code, through the public API: POST /auth/codes, then POST /auth/sessions. */
(function () {
  "use strict";
  const M = window.Mall, W = M.words;
  const form = document.getElementById("signin-form"), msg = document.getElementById("signin-msg");
  const out = document.getElementById("signout");
  function say(text, isError) { msg.textContent = text; msg.classList.toggle("error", !!isError); }
  if (M.session.token()) out.hidden = false;
  out.addEventListener("click", async function () {
    try { await M.api("DELETE", "/auth/sessions"); } catch (e) { /* signed out here either way */ }
    M.session.clear(); location.href = "/mall";
  });
  document.getElementById("send-code").addEventListener("click", async function () {
    const phone = document.getElementById("phone").value.trim();
    try {
      await M.api("POST", "/auth/codes", {phone: phone});
      say(W.code_sent, false);
      document.getElementById("code").focus();
    } catch (e) { say(e.message, true); }
  });
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const phone = document.getElementById("phone").value.trim(), code = document.getElementById("code").value.trim();
    try {
      const s = await M.api("POST", "/auth/sessions", {phone: phone, code: code});
      M.session.save(s.token, s.member_id);
      location.href = form.dataset.next || "/mall";
    } catch (e) { say(e.message, true); }
  });
})();
