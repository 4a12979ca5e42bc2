/* Operator sign-in through the operator API (POST /operator/sessions); the token is kept for this browser session. */
(function () {
  "use strict";
  const O = window.Office, form = document.getElementById("signin-form");
  O.form(form, {
    method: "POST", path: "/operator/sessions",
    body: function (data) { return {username: data.get("username").trim(), password: data.get("password")}; },
    done: function (answer) { O.session.save(answer.token); location.href = form.dataset.next || "/office"; },
  });
})();
