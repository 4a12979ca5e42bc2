/* The reports page: choosing another report shows it at once (the form still works without this script: its
   button submits it). Nothing is written from here: the page only reads. */
(function () {
  "use strict";
  const form = document.getElementById("report-form");
  const pick = document.getElementById("report");
  if (!form || !pick) return;
  pick.addEventListener("change", function () {
    const group = document.getElementById("group_by");
    if (group) group.disabled = true;  // another report has other groupings: its default is taken
    form.submit();
  });
})();
