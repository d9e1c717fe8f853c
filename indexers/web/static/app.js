// sipscope web app: progressive enhancements only (every page works without JavaScript).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // range picker: show the custom From/To fields only for "Custom range"
  var last = document.getElementById("last"), custom = document.getElementById("custom");
  if (last && custom) {
    var sync = function () { custom.classList.toggle("hidden", last.value !== "custom"); };
    last.addEventListener("change", sync);
    sync();
  }

  // call page: highlight the arrow of the message shown; "show all" lists every message
  var select = function () {
    var n = (location.hash.match(/^#m(\d+)$/) || [])[1];
    document.querySelectorAll("svg.ladder a.arrow.sel").forEach(function (a) { a.classList.remove("sel"); });
    if (n) {
      var a = document.querySelector('svg.ladder a.arrow[data-n="' + n + '"]');
      if (a) { a.classList.add("sel"); }
    }
  };
  window.addEventListener("hashchange", select);
  select();
  var all = document.getElementById("show-all"), msgs = document.getElementById("messages");
  if (all && msgs) {
    all.addEventListener("click", function (e) {
      e.preventDefault();
      msgs.classList.toggle("all");
      all.textContent = msgs.classList.contains("all") ? "Show only the selected message" : "Show all messages";
    });
  }

  // alerts page: refresh every 30 s while "live" is ticked
  if (document.body.classList.contains("live")) {
    setTimeout(function () { location.reload(); }, 30000);
  }
})();
