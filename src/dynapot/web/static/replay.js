// dynapot admin: step through or play a session replay. The page already holds every record of
// this page as escaped text; this only hides and reveals them (no HTML is built from data).
"use strict";

(function () {
  const list = document.getElementById("replay");
  const controls = document.getElementById("replay-controls");
  if (!list || !controls) return;
  const items = Array.from(list.children);
  if (items.length === 0) return;
  const position = document.getElementById("replay-position");
  const play = document.getElementById("replay-play");
  const MAX_WAIT = 2000; // ms between two records at most, whatever was recorded
  let shown = 0;
  let timer = null;

  function update() {
    position.textContent = shown + " / " + items.length;
  }

  function reveal() {
    if (shown >= items.length) return false;
    items[shown].classList.remove("pending");
    items[shown].scrollIntoView({ block: "nearest" });
    shown += 1;
    update();
    return shown < items.length;
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    play.textContent = "Play";
  }

  function next() {
    if (!reveal() || shown >= items.length) { stop(); return; }
    const delay = parseFloat(items[shown].dataset.delay || "0") * 1000;
    timer = setTimeout(next, Math.min(Math.max(delay, 0), MAX_WAIT));
  }

  function start() {
    for (const item of items) item.classList.add("pending");
    shown = 0;
    update();
  }

  controls.hidden = false;
  start();
  play.addEventListener("click", function () {
    if (timer !== null) { stop(); return; }
    if (shown >= items.length) start();
    play.textContent = "Pause";
    next();
  });
  document.getElementById("replay-step").addEventListener("click", function () { stop(); reveal(); });
  document.getElementById("replay-all").addEventListener("click", function () {
    stop();
    while (reveal()) { /* reveal the rest */ }
  });
})();
