// The dashboard's live refresh: every few seconds, fetch dashboard.json with
// the page's filters, swap each section's HTML, and point each plot at its new
// address: the address carries a digest of the plot's data, so an image is
// fetched again only when its data changed. No libraries.
(function () {
  "use strict";
  var root = document.getElementById("balsam-dashboard");
  if (!root) { return; }
  var jsonUrl = root.dataset.json;
  var every = parseInt(root.dataset.refreshMs, 10) || 5000;
  var sections = ["states", "workflows", "failures", "launchers", "launches"];
  var form = document.getElementById("balsam-filters");
  var message = document.getElementById("balsam-message");
  var updated = document.getElementById("balsam-updated");
  var busy = false;

  function query() {
    return new URLSearchParams(new FormData(form)).toString();
  }

  function show(data) {
    sections.forEach(function (name) {
      var target = document.getElementById("balsam-" + name);
      if (target && data.html && name in data.html) { target.innerHTML = data.html[name]; }
    });
    Object.keys(data.plots || {}).forEach(function (name) {
      var img = document.getElementById("balsam-plot-" + name);
      var url = data.plots[name];
      if (!img) { return; }
      img.hidden = !url;
      if (url && img.getAttribute("src") !== url) { img.src = url; }
    });
    message.hidden = !data.message;
    message.textContent = data.message || "";
    updated.textContent = "updated " + data.generated_at.slice(0, 19).replace("T", " ") + " UTC";
    root.dataset.total = data.total;
  }

  function refresh() {
    if (busy) { return; }
    busy = true;
    fetch(jsonUrl + "?" + query(), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (!response.ok || type.indexOf("application/json") !== 0) {
          throw new Error(response.redirected ? "logged out: reload the page to log in" : "HTTP " + response.status);
        }
        return response.json();
      })
      .then(show)
      .catch(function (error) {
        updated.textContent = "not updated (" + error.message + ")";
      })
      .finally(function () { busy = false; });
  }

  form.addEventListener("change", function () {
    history.replaceState(null, "", "?" + query());
    refresh();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    refresh();
  });
  setInterval(refresh, every);
})();
