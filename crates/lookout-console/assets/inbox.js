// The alerts inbox, live: new alerts arrive over Server-Sent Events as ready-made table rows
// (escaped on the server) and are put in their place — most serious first, then oldest.
(function () {
  "use strict";
  var table = document.getElementById("alerts");
  var status = document.getElementById("live-status");
  if (!table || table.dataset.live !== "true" || !window.EventSource) {
    if (status) status.textContent = "Live updates are not available: reload the page to see new alerts.";
    return;
  }
  var body = table.tBodies[0];
  var rank = { danger: 0, caution: 1, advisory: 2 };
  function before(a, b) {
    var ra = rank[a.dataset.severity], rb = rank[b.dataset.severity];
    if (ra !== rb) return ra < rb;
    return Number(a.dataset.created) < Number(b.dataset.created);
  }
  function place(row) {
    var old = document.getElementById(row.id);
    if (old) old.remove();
    var rows = body.rows;
    for (var i = 0; i < rows.length; i++) {
      if (before(row, rows[i])) { body.insertBefore(row, rows[i]); return; }
    }
    body.appendChild(row);
  }
  var source = new EventSource("/alerts/stream");
  source.addEventListener("ready", function () {
    status.textContent = "Live: new alerts appear here as they happen.";
  });
  source.addEventListener("alert", function (e) {
    var holder = document.createElement("tbody");
    holder.innerHTML = e.data;
    var row = holder.rows[0];
    if (!row) return;
    row.classList.add("fresh");
    place(row);
    var none = document.getElementById("no-alerts");
    if (none) none.remove();
    var label = row.cells[0].textContent.trim() + " alert: " + row.cells[1].textContent.trim();
    status.textContent = "New " + label;
  });
  source.addEventListener("lagged", function () {
    status.textContent = "Some updates were missed: reload the page.";
  });
  source.onerror = function () {
    status.textContent = "Live updates paused; reconnecting…";
  };
})();
