// dynapot admin: the live event feed. No inline script anywhere (the CSP forbids it); every
// string from the server is put in with textContent, never as HTML.
"use strict";

(function () {
  const table = document.getElementById("feed");
  if (!table || !window.EventSource) return;
  const body = table.tBodies[0];
  const state = document.getElementById("feed-state");
  const moreText = document.getElementById("feed-more");
  const KEEP = 200; // rows kept on the page: the oldest go
  let hidden = 0; // events not shown since the page was opened ("N more")

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
  }

  function address(ip, port) {
    return port ? ip + ":" + port : ip;
  }

  function show(batch) {
    // Newest first, as the page lists them; the batch holds at most a few dozen.
    const fragment = document.createDocumentFragment();
    for (const e of batch.events) {
      const row = document.createElement("tr");
      row.className = "new";
      row.dataset.id = e.id;
      cell(row, e.id);
      cell(row, (e.time || "").slice(0, 19).replace("T", " "));
      cell(row, e.kind);
      cell(row, address(e.src_ip, e.src_port));
      cell(row, address(e.dst_ip, e.dst_port));
      cell(row, (e.detail || "").slice(0, 160));
      fragment.appendChild(row);
    }
    body.insertBefore(fragment, body.firstChild);
    while (body.rows.length > KEEP) body.deleteRow(body.rows.length - 1);
    hidden += batch.more;
    if (hidden > 0) {
      moreText.textContent = "(" + hidden + (batch.capped ? "+" : "") + " more not shown)";
    }
  }

  const source = new EventSource("/events/stream?after=" + encodeURIComponent(table.dataset.cursor || "0"));
  source.addEventListener("open", function () { state.textContent = "live"; });
  source.addEventListener("error", function () { state.textContent = "reconnecting…"; });
  source.addEventListener("events", function (message) {
    try {
      show(JSON.parse(message.data));
    } catch (err) {
      state.textContent = "a message could not be read";
    }
  });
})();
