/* A server's live status page: everything arrives over one event stream from the dashboard
   (the hub's progress events as they happen, and the server's state now and then); the
   browser itself only counts the clock. No polling, no reloads, unless the dashboard refuses
   the stream (429, too many live pages) or it is lost for good (a hub restart): then the
   server's state is polled now and then. */
(function () {
  "use strict";
  var hd = window.hubdash;
  var root = document.getElementById("hd-status");
  if (!root) return;

  var PHASES = { requested: 0, submitted: 1, pending: 2, running: 3, connecting: 4, engines: 5, tunnel: 6 };
  var WORDS = {
    queued: "Queued", starting: "Starting", running: "Running", ready: "Ready",
    failed: "Failed", stopping: "Stopping", stopped: "Stopped"
  };
  var COLOURS = {
    queued: "warning", starting: "info", running: "primary", ready: "success",
    failed: "danger", stopping: "secondary", stopped: "secondary"
  };
  var TIMELINE_WORDS = {
    requested: "Requested", submitted: "Submitted", pending: "Queued", running: "Running",
    connecting: "Server starting", engines: "Engines", tunnel: "Tunnel up", ready: "Ready",
    failed: "Failed"
  };

  var view = JSON.parse(document.getElementById("initial-view").textContent);
  var title = root.dataset.serverTitle;
  var warnSeconds = Number(root.dataset.warningMinutes || 0) * 60;
  var clockOffset = Date.now() / 1000 - view.time; // browser clock minus the hub's
  var sawStart = !view.ready;       // only a start this page watched redirects it
  var phase = null;                 // the latest phase the spawner reported
  var latest = {};                  // the latest details the spawner reported, and when
  var latestTime = 0;
  var runningSince = null;
  var tunnel = null;
  var finished = null;              // "ready" or "failed", once the hub says so
  var shown = null;
  var walltimeWarned = false;
  var timeline = [];
  var timelineKeys = {};

  var el = function (id) { return document.getElementById(id); };

  function hubNow() { return Date.now() / 1000 - clockOffset; }

  function status() {
    if (finished === "failed") return "failed";
    if (finished === "ready" || view.status === "running") return "ready";
    if (view.status === "stopping") return "stopping";
    if (view.status === "stopped" || view.status === "failed") return view.status;
    var reached = phase !== null ? PHASES[phase] || 0 : 0;
    if (view.job_state === "running" || reached >= PHASES.running) return "running";
    if (view.job_state === "pending" || reached >= PHASES.submitted) return "queued";
    return "starting";
  }

  // A detail from the newer of the two sources: the spawner's last event or the last state read.
  function detail(key) {
    var fromView = view[key];
    var fromEvent = latest[key];
    if (latestTime > view.time && fromEvent !== undefined && fromEvent !== null && fromEvent !== "") {
      return fromEvent;
    }
    if (fromView !== undefined && fromView !== null && fromView !== "") return fromView;
    return fromEvent;
  }

  function setText(selector, text) {
    var node = root.querySelector(selector);
    if (node) node.textContent = text === undefined || text === null || text === "" ? "—" : String(text);
  }

  function renderDetails(now) {
    var current = status();
    var queued = current === "queued";
    // Text only (textContent): cluster names and titles come from config and saved state.
    var cluster = view.cluster;
    setText('[data-detail="cluster"]', cluster
      ? cluster.title + (cluster.note ? " (" + cluster.note + ")" : "") : "");
    setText('[data-detail="job_id"]', detail("job_id"));
    var jobState = queued ? "pending" : (detail("state") || view.job_state);
    if (current === "failed") jobState = (view.outcome && view.outcome.state) || "ended";
    setText('[data-detail="job_state"]', jobState);
    setText('[data-detail="queue"]', view.queue || latest.queue);
    setText('[data-detail="environment"]', view.environment);
    setText('[data-detail="reason"]', queued ? detail("reason") : "");
    setText('[data-detail="position"]', queued ? detail("position") : "");
    var estimate = queued ? detail("estimated_start") : "";
    setText('[data-detail="estimated_start"]', estimate ? hd.dateTime(estimate) : (queued ? "not known yet" : ""));
    // In the spawner's events `nodes` names the job's nodes and `node_count` counts them.
    var nodeList = view.node_list && view.node_list.length ? view.node_list : latest.nodes;
    setText('[data-detail="node"]', nodeList && nodeList.length > 1 ? nodeList.join(", ") : detail("node"));
    setText('[data-detail="nodes"]', view.nodes !== null ? view.nodes : latest.node_count);
    var engines = view.engines !== null ? view.engines : latest.engines;
    var up = latest.engines_up !== undefined && latestTime > view.time ? latest.engines_up : view.engines_up;
    setText('[data-detail="engines"]', engines && up !== null && up !== undefined && !queued
      ? up + " of " + engines + " up" : engines);
    setText('[data-detail="walltime"]', view.walltime ||
      (latest.walltime_seconds ? hd.walltime(latest.walltime_seconds) : ""));

    var started = view.started_at || runningSince;
    var submitted = view.submitted_at || (timeline.length ? timeline[0].time : null);
    if (submitted && (queued || current === "starting")) {
      setText('[data-detail="waited"]', hd.duration(now - submitted));
    } else if (submitted && started) {
      setText('[data-detail="waited"]', hd.duration(started - submitted));
    }
    var live = current === "running" || current === "ready";
    var elapsed = started && live ? now - started : null;
    setText('[data-detail="elapsed"]', elapsed !== null ? hd.duration(elapsed) : "");
    var left = elapsed !== null && view.walltime_seconds ? view.walltime_seconds - elapsed : null;
    setText('[data-detail="left"]', left !== null ? hd.duration(left) : "");
    warnAboutWalltime(left);
  }

  function renderTunnel() {
    var t = view.tunnel || tunnel;
    var badge = el("tunnel-state");
    if (!t) {
      badge.textContent = "not open";
      badge.className = "badge text-bg-secondary";
      setText('[data-tunnel="notebook"]', "");
      setText('[data-tunnel="hub"]', "");
      setText('[data-tunnel="rtt"]', "");
      return;
    }
    var nb = t.notebook_forward || {};
    var hub = t.hub_forward || {};
    var up = !!nb.open;
    badge.textContent = up ? "up" : nb.local_port ? "down" : "not open yet";
    badge.className = "badge text-bg-" + (up ? "success" : nb.local_port ? "danger" : "secondary");
    setText('[data-tunnel="notebook"]', nb.local_port
      ? (nb.open ? "up" : "down") + ": 127.0.0.1:" + nb.local_port + " → " + (nb.node || "?") + ":" + (nb.remote_port || "?")
      : "");
    setText('[data-tunnel="hub"]', hub.port
      ? (hub.open ? "up" : "down") + ": login node port " + hub.port
      : "");
    setText('[data-tunnel="rtt"]', t.rtt_ms !== null && t.rtt_ms !== undefined ? t.rtt_ms + " ms" : "");
  }

  // The progress stream's events in the order they came (the hub replays them from the start);
  // a page opened after the start has only the spawner's saved history to show.
  function renderTimeline() {
    var list = el("timeline");
    var entries = timeline.length ? timeline : (view.history || []);
    list.textContent = "";
    entries.forEach(function (item) {
      var li = document.createElement("li");
      li.dataset.phase = item.phase;
      var when = document.createElement("time");
      when.textContent = item.time ? hd.clockTime(item.time) : "";
      var word = document.createElement("strong");
      word.textContent = TIMELINE_WORDS[item.phase] || item.phase;
      li.appendChild(when);
      li.appendChild(word);
      if (item.message) li.appendChild(document.createTextNode(" " + item.message));
      list.appendChild(li);
    });
  }

  function render() {
    var current = status();
    var word = el("status-word");
    word.textContent = WORDS[current];
    word.dataset.status = current;
    word.className = "badge text-bg-" + COLOURS[current];
    if (current === "ready" || current === "failed") {
      el("progress-bar").style.width = "100%";
      el("progress-bar").classList.toggle("bg-success", current === "ready");
      el("progress-bar").classList.toggle("bg-danger", current === "failed");
      el("progress").setAttribute("aria-valuenow", "100");
    }
    hd.show(el("open-link"), current === "ready");
    el("open-link").href = view.url || el("open-link").href;
    hd.show(el("stop-form"), ["queued", "starting", "running", "ready"].indexOf(current) >= 0);
    el("stop-button").textContent = current === "ready" ? "Stop" : "Cancel job";
    hd.show(el("start-link"), current === "stopped");
    hd.show(el("copy-link"), current === "stopped" || current === "failed");
    hd.show(el("change-link"), current === "stopped" || current === "failed");
    var notify = el("notify-button");
    hd.show(notify, "Notification" in window && Notification.permission === "default" &&
      (current === "queued" || current === "starting"));
    if (current !== shown) {
      if (shown === "queued" && current === "running") announceStart();
      shown = current;
      // A line in the console for whoever follows the page (and for the e2e tests).
      console.info("hubdash status: " + current);
    }
    var position = detail("position");
    document.title = WORDS[current] + (current === "queued" && position ? " #" + position : "") +
      " · " + title + " · hubdash";
    renderDetails(hubNow());
    renderTunnel();
    renderTimeline();
  }

  function announceStart() {
    var where = detail("node") ? " on " + detail("node") : "";
    document.title = "▶ Started · " + title + " · hubdash";
    notifyUser("Your job started", title + " is running" + where + "; JupyterLab opens when it answers.");
  }

  function notifyUser(heading, body) {
    if ("Notification" in window && Notification.permission === "granted") {
      try { new Notification(heading, { body: body, tag: "hubdash-" + title }); } catch (e) { /* not allowed here */ }
    }
  }

  function warnAboutWalltime(left) {
    var box = el("walltime-warning");
    if (left === null || !warnSeconds || left > warnSeconds) {
      hd.show(box, false);
      return;
    }
    box.textContent = left > 0
      ? "Walltime ends in " + hd.duration(left) + ": the job and this server stop then. Save your work."
      : "Walltime is over: the scheduler ends the job now.";
    hd.show(box, true);
    if (!walltimeWarned) {
      walltimeWarned = true;
      notifyUser("Walltime ends soon", title + ": " + hd.duration(left) + " left.");
    }
  }

  function showFailure(message) {
    var text = message || view.last_error || "The server did not start.";
    var marker = text.indexOf("Last lines of its output:");
    el("failure-reason").textContent = marker >= 0 ? text.slice(0, marker).trim() : text;
    var output = marker >= 0 ? text.slice(marker + "Last lines of its output:".length).replace(/^\s*\n/, "") : "";
    el("failure-output").textContent = output;
    hd.show(el("failure-output"), !!output);
    el("retry-link").href = root.dataset.spawnUrl;
    hd.show(el("failure"), true);
    el("status-message").textContent = "";
  }

  function onProgress(event) {
    if (typeof event.progress === "number") {
      var bar = el("progress-bar");
      bar.style.width = event.progress + "%";
      el("progress").setAttribute("aria-valuenow", String(event.progress));
      bar.classList.toggle("bg-danger", !!event.failed);
    }
    var info = event.hubdash || {};
    var entry = {
      phase: info.phase || (event.ready ? "ready" : event.failed ? "failed" : "requested"),
      time: info.time || (event.ready || event.failed ? hubNow() : null),
      message: event.message || ""
    };
    var key = entry.phase + "|" + (info.time ? Math.round(info.time) : "") + "|" + entry.message;
    if (!timelineKeys[key]) {
      timelineKeys[key] = true;
      timeline.push(entry);
    }
    if (info.phase) {
      phase = info.phase;
      if (info.phase === "running" && !runningSince) runningSince = info.time;
      if ((info.time || 0) >= latestTime) {
        Object.keys(info).forEach(function (k) { latest[k] = info[k]; });
        latestTime = info.time || hubNow();
      }
      if (info.tunnel) tunnel = info.tunnel;
    }
    if (event.message && !event.failed) el("status-message").textContent = event.message;
    render();
  }

  // A fresh reading of the server's state, from the stream or (refused a stream) a poll.
  function onView(data) {
    view = data;
    clockOffset = Date.now() / 1000 - view.time;
    if (view.pending === "spawn" && finished === "failed") {
      finished = null; // started again meanwhile
      hd.show(el("failure"), false);
    }
    hd.show(el("problem"), false);
    if (view.status === "failed" && finished !== "failed") {
      // The spawner's record of the failed job (the hub's own event may never come).
      finished = "failed";
      showFailure(view.last_error);
    }
    render();
    if (sawStart && view.ready && view.url) {
      // The hub's "ready" event is on its way too; whichever comes first opens the server.
      source.close();
      stopPolling();
      window.location.replace(view.url);
    }
  }

  var stopPolling = function () {};
  var polling = false;
  function pollInstead(message, seconds) {
    if (polling) return;
    polling = true;
    hd.show(el("problem"), false);
    hd.pollingNote(el("live-note"), message, seconds);
    stopPolling = hd.poll(root.dataset.pollUrl, seconds, onView, function (text) {
      el("problem").textContent = text;
      hd.show(el("problem"), true);
    });
  }

  var source = hd.openEvents(root.dataset.eventsUrl, pollInstead);
  source.addEventListener("server", function (e) { onView(JSON.parse(e.data)); });
  source.addEventListener("progress", function (e) { onProgress(JSON.parse(e.data)); });
  source.addEventListener("ready", function (e) {
    finished = "ready";
    render();
    if (sawStart) {
      source.close();
      window.location.replace(JSON.parse(e.data).url || view.url);
    }
  });
  source.addEventListener("failed", function (e) {
    finished = "failed";
    source.close();
    showFailure(JSON.parse(e.data).message);
    render();
  });
  source.addEventListener("problem", function (e) {
    el("problem").textContent = JSON.parse(e.data).message;
    hd.show(el("problem"), true);
  });
  source.onerror = function () {
    if (finished) return;
    if (source.readyState === EventSource.CLOSED) {
      // Refused or gone for good (the hub restarting answers with an error page for a
      // while): keep following the server by polling, so a start still opens by itself.
      // (A moment later: a refusal for too many pages says so first, via openEvents.)
      setTimeout(function () {
        pollInstead("Lost the live stream (the hub may be restarting).", 5);
      }, 1500);
      return;
    }
    el("problem").textContent = "Reconnecting to the dashboard…";
    hd.show(el("problem"), true);
  };

  el("notify-button").addEventListener("click", function () {
    Notification.requestPermission().then(render);
  });
  var copy = el("copy-link");
  if (copy) copy.addEventListener("click", function () { hd.copyLink(copy); });

  if (view.status === "failed") showFailure(view.last_error);
  else if (view.status === "stopped" && view.outcome) {
    el("status-message").textContent = "Last job: " + view.outcome.message;
  }
  render();
  setInterval(function () { renderDetails(hubNow()); }, 1000);
})();
