/* My servers: the cards, replaced by the dashboard's rendering whenever a server changes. */
(function () {
  "use strict";
  var hd = window.hubdash;
  var cards = document.getElementById("cards");
  var problem = document.getElementById("problem");
  var form = document.getElementById("new-named");

  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = document.getElementById("new-name").value.trim();
      if (name) window.location.assign(form.dataset.spawnBase + encodeURIComponent(name));
    });
  }
  if (!cards) return;
  // The cards are drawn anew on every change: one listener on their container.
  cards.addEventListener("click", function (event) {
    var button = event.target.closest(".hd-copy-link");
    if (button) hd.copyLink(button);
  });
  hd.tick(cards);
  setInterval(function () { hd.tick(cards); }, 1000);

  function showCards(data) {
    // Keep keyboard focus where it was when the cards are drawn anew.
    var focused = document.activeElement && cards.contains(document.activeElement)
      ? document.activeElement.closest("[data-server]") : null;
    var focusedServer = focused ? focused.dataset.server : null;
    cards.innerHTML = data.html;  // rendered and escaped by the dashboard's templates
    hd.tick(cards);
    hd.show(problem, false);
    if (focusedServer !== null) {
      cards.querySelectorAll("[data-server]").forEach(function (card) {
        if (card.dataset.server === focusedServer) {
          var target = card.querySelector("a, button");
          if (target) target.focus();
        }
      });
    }
  }

  function pollInstead(message, seconds) {
    hd.show(problem, false);
    hd.pollingNote(document.getElementById("live-note"), message, seconds);
    hd.poll(cards.dataset.pollUrl, seconds, showCards, function (text) {
      problem.textContent = text;
      hd.show(problem, true);
    });
  }

  var source = hd.openEvents(cards.dataset.eventsUrl, pollInstead);
  source.addEventListener("cards", function (event) { showCards(JSON.parse(event.data)); });
  source.addEventListener("problem", function (event) {
    problem.textContent = JSON.parse(event.data).message;
    hd.show(problem, true);
  });
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) {
      problem.textContent = "Lost contact with the dashboard; reload the page to see current states.";
      hd.show(problem, true);
    }
  };
})();
