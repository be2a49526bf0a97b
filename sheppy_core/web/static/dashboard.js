// sheppy dashboard: live counts over server-sent events (closed while the tab is hidden) and the
// throughput chart (uPlot). No framework, no network but this server.
(function () {
  "use strict";
  var source = null;

  function formatCount(n) {
    return n > 10000 ? "10,000+" : n.toLocaleString("en-US");
  }

  function applyCounts(event) {
    var counts = JSON.parse(event.data);
    Object.keys(counts).forEach(function (queue) {
      var row = document.querySelector('tr[data-testid="queue-row"][data-queue="' + CSS.escape(queue) + '"]');
      if (!row) { return; }
      Object.keys(counts[queue]).forEach(function (status) {
        var cell = row.querySelector('[data-testid="count-' + status + '"]');
        if (cell) { cell.textContent = formatCount(counts[queue][status]); }
      });
    });
  }

  function open() {
    if (source || document.hidden || !document.querySelector("[data-live-counts]")) { return; }
    source = new EventSource("/events");
    source.addEventListener("counts", applyCounts);
  }

  function close() {
    if (source) { source.close(); source = null; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { close(); } else { open(); }
  });

  function drawChart() {
    var holder = document.getElementById("throughput-chart");
    var data = document.getElementById("throughput-data");
    if (!holder || !data || typeof uPlot === "undefined") { return; }
    var perQueue = JSON.parse(data.textContent);
    var names = Object.keys(perQueue);
    if (!names.length) { return; }
    var minutes = perQueue[names[0]].minutes;
    var done = minutes.map(function (_, i) {
      return names.reduce(function (sum, q) { return sum + perQueue[q].done[i]; }, 0);
    });
    var failed = minutes.map(function (_, i) {
      return names.reduce(function (sum, q) { return sum + perQueue[q].failed[i]; }, 0);
    });
    new uPlot({
      width: Math.min(900, holder.clientWidth || 900), height: 220,
      series: [{}, { label: "done/min", stroke: "#2a7" }, { label: "failed/min", stroke: "#c33" }],
    }, [minutes, done, failed], holder);
  }

  document.addEventListener("DOMContentLoaded", function () { drawChart(); open(); });
})();
