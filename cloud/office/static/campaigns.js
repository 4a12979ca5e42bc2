/* Coupon campaigns (/office/campaigns): define a coupon and issue it to a segment through the operator API
   (POST /operator/coupon-definitions, POST /operator/campaigns), which validate, decide by role and audit. */
(function () {
  "use strict";
  const O = window.Office, W = O.words;
  function int(text) { return parseInt(text, 10) || 0; }
  O.form(document.getElementById("define-form"), {
    method: "POST", path: "/operator/coupon-definitions",
    body: function (d) {
      return {definition_id: d.get("definition_id").trim(), rule_id: d.get("rule_id"), name: d.get("name").trim(),
              valid_days: int(d.get("valid_days")), per_member_limit: int(d.get("per_member_limit")),
              total_limit: int(d.get("total_limit"))};
    },
    done: function (answer) {
      O.say(W["promotions.c.defined"].replace("{id}", answer.definition_id));
      setTimeout(function () { location.reload(); }, 800);
    },
  });
  const issue = document.getElementById("issue-form");
  // one campaign id per page load: pressing again (a retry) answers the same campaign, never a second issue
  function newId() { return "office-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8); }
  let campaignId = newId();
  O.form(issue, {
    method: "POST", path: "/operator/campaigns",
    body: function (d) { return {definition_id: d.get("definition_id"), segment: d.get("segment"), campaign_id: campaignId}; },
    done: function (answer) {
      const msg = document.getElementById("issue-msg");
      msg.textContent = W["promotions.c.launched"].replace("{n}", answer.members).replace("{id}", answer.campaign_id);
      msg.classList.add("ok");
      campaignId = newId();  // issued: the next press is another campaign
    },
  });
})();
