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

  // A walltime in seconds as the form spells it: H:MM:SS (views.walltime_text, in the browser).
  function walltime(seconds) {
    seconds = Math.floor(seconds);
    var pad = function (n) { return String(n).padStart(2, "0"); };
    return Math.floor(seconds / 3600) + ":" + pad(Math.floor(seconds / 60) % 60) + ":" + pad(seconds % 60);
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

  var JSON_REQUEST = { headers: { Accept: "application/json" }, credentials: "same-origin" };

  // The page's live event stream. The dashboard refuses it with 429 when this user, or
  // everyone together, has as many live pages open as it allows; EventSource cannot see a
  // status, so a stream that closes before it ever opened is asked once more with fetch()
  // to learn why. On 429, onRefused(message, seconds) runs and the page polls instead. A
  // fetch that gets a stream after all (a place came free meanwhile) is dropped at once.
  function openEvents(url, onRefused) {
    var source = new EventSource(url);
    var opened = false;
    source.addEventListener("open", function () { opened = true; });
    source.addEventListener("error", function () {
      if (opened || source.readyState !== EventSource.CLOSED || !window.fetch) return;
      var probe = new AbortController();
      fetch(url, Object.assign({ signal: probe.signal }, JSON_REQUEST)).then(function (response) {
        if (response.status !== 429) { probe.abort(); return; }
        var seconds = Number(response.headers.get("Retry-After")) || 20;
        return response.json().then(function (body) { onRefused(body.message || "", seconds); });
      }).catch(function () { /* nothing more to learn */ });
    });
    return source;
  }

  // Reads a JSON URL every `seconds` (the first time after one interval: the page is fresh);
  // onData(json) on success, onProblem(message) on failure. Returns a function that stops it.
  function poll(url, seconds, onData, onProblem) {
    var timer = null;
    var stopped = false;
    function once() {
      fetch(url, JSON_REQUEST).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.message || "The dashboard answered " + response.status);
          if (!stopped) onData(body);
        });
      }).catch(function (error) {
        if (!stopped) onProblem(error.message);
      }).then(function () {
        if (!stopped) timer = setTimeout(once, seconds * 1000);
      });
    }
    timer = setTimeout(once, seconds * 1000);
    return function () { stopped = true; clearTimeout(timer); };
  }

  // What a refused page says, quietly, instead of an alert.
  function pollingNote(el, message, seconds) {
    el.textContent = (message ? message + " " : "") + "This page refreshes every " + seconds +
      " s instead of live.";
    show(el, true);
  }

  // A server's launch link (the spawn form filled in with its last choices), copied whole;
  // where the browser allows no clipboard, shown for the user to copy.
  function copyLink(button) {
    var link = new URL(button.dataset.link, window.location.href).href;
    var said = function (text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = "Copy launch link"; }, 3000);
    };
    var byHand = function () { window.prompt("The launch link of this server:", link); };
    if (!navigator.clipboard) { byHand(); return; }
    navigator.clipboard.writeText(link).then(function () { said("Link copied"); }, byHand);
  }

  window.hubdash = {
    duration: duration, walltime: walltime, clockTime: clockTime, dateTime: dateTime, tick: tick,
    show: show, openEvents: openEvents, poll: poll, pollingNote: pollingNote, copyLink: copyLink
  };
})();
