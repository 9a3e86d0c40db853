/* Helpers shared by the dashboard's pages (plain JavaScript, no build step). */
(function () {
  "use strict";

  function duration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) return "—";
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) return hours + " h " + String(minutes).padStart(2, "0") + " min";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function clockTime(epochSeconds) {
    if (!epochSeconds) return "";
    return new Date(epochSeconds * 1000).toLocaleTimeString();
  }

  function dateTime(iso) {
    var when = new Date(iso);
    if (!iso || isNaN(when.getTime())) return iso || "";
    return when.toLocaleString();
  }

  // Elapsed and remaining times count on the browser's clock between the hub's readings:
  // data-hub-time is the hub's time of the reading, so clock skew cancels out.
  function tick(root) {
    var now = Date.now() / 1000;
    (root || document).querySelectorAll("[data-elapsed-since]").forEach(function (el) {
      var offset = el.dataset.offset || (el.dataset.offset = String(now - Number(el.dataset.hubTime)));
      el.textContent = duration(now - Number(offset) - Number(el.dataset.elapsedSince));
    });
    (root || document).querySelectorAll("[data-left-until]").forEach(function (el) {
      var offset = el.dataset.offset || (el.dataset.offset = String(now - Number(el.dataset.hubTime)));
      el.textContent = duration(Number(el.dataset.leftUntil) - (now - Number(offset)));
    });
    (root || document).querySelectorAll("time[data-iso]").forEach(function (el) {
      el.textContent = dateTime(el.dataset.iso);
    });
  }

  function show(el, visible) {
    if (el) el.classList.toggle("d-none", !visible);
  }

  window.hubdash = { duration: duration, clockTime: clockTime, dateTime: dateTime, tick: tick, show: show };
})();
