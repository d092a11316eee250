// Live events over SSE. Every string from the daemon goes into the page through
// textContent (never innerHTML), so a device name is shown, never run.
"use strict";

(function () {
  const MAX_ROWS = 500;
  const MAX_CHAINS = 100;
  const events = document.getElementById("events");
  const chains = document.getElementById("chains");
  const state = document.getElementById("stream-state");
  const banner = document.getElementById("alarm-banner");
  const bannerText = document.getElementById("alarm-text");

  // Control characters and bidi overrides are shown as \u202e, never applied.
  const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  function visible(text) {
    return String(text).replace(INVISIBLE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = visible(text);
    if (cls) node.className = cls;
    return node;
  }

  function clock(iso) {
    if (!iso) return "";
    const at = new Date(iso);
    return isNaN(at) ? String(iso) : at.toLocaleTimeString();
  }

  function ms(value) {
    return value === null || value === undefined ? "" : "+" + value + " ms";
  }

  function addRow(row) {
    const tr = el("tr", null, "kind-" + String(row.kind).replace(/[^a-z_]/g, ""));
    if (row.alarm) tr.classList.add("alarm-row");
    if (row.catch_up) tr.classList.add("catch-up");
    tr.dataset.kind = row.kind;
    tr.dataset.id = row.id;
    tr.appendChild(el("td", clock(row.at)));
    tr.appendChild(el("td", row.account));
    tr.appendChild(el("td", row.device, "device-name"));
    tr.appendChild(el("td", row.kind));
    let by = "";
    if (row.rule) {
      const echo = row.command && row.kind !== "command";
      by = echo ? " (echo of " + row.rule + ")" : " (rule " + row.rule + ")";
    }
    tr.appendChild(el("td", row.text + by));
    events.insertBefore(tr, events.firstChild);
    while (events.childElementCount > MAX_ROWS) events.removeChild(events.lastChild);
    if (row.alarm) {
      banner.hidden = false;
      bannerText.textContent = String(row.kind).toUpperCase() + " " + row.text + ": " + row.device;
    }
  }

  function renderChain(chain) {
    const li = el("li", null, "chain");
    li.dataset.command = chain.command;
    const path = el("div", null, "path");
    if (chain.cause) {
      path.appendChild(el("span", chain.cause.kind + " " + chain.cause.what +
        (chain.cause.device ? " on " + chain.cause.device : ""), "c-cause"));
    } else {
      path.appendChild(el("span", "(cause not in view)", "c-cause"));
    }
    path.appendChild(el("span", "rule " + chain.rule, "c-rule"));
    path.appendChild(el("span", chain.action + (chain.target ? " → " + chain.target : ""), "c-command"));
    li.appendChild(path);
    const steps = el("ul", null, "steps");
    for (const s of chain.steps) {
      let text = s.outcome + " " + ms(s.after_ms);
      if (s.guard) text += " guard " + s.guard;
      if (s.reason) text += " (" + s.reason + ")";
      if (s.latency_ms !== null && s.latency_ms !== undefined) text += ", " + s.latency_ms + " ms after sending";
      steps.appendChild(el("li", text, "step-" + String(s.outcome).replace(/[^a-z_]/g, "")));
    }
    for (const e of chain.echo) {
      steps.appendChild(el("li", "echo: " + e.what + " " + ms(e.after_ms), "echo"));
    }
    li.appendChild(steps);
    return li;
  }

  function updateChain(chain) {
    const fresh = renderChain(chain);
    for (const old of chains.children) {
      if (old.dataset.command === chain.command) {
        chains.replaceChild(fresh, old);
        return;
      }
    }
    chains.insertBefore(fresh, chains.firstChild);
    while (chains.childElementCount > MAX_CHAINS) chains.removeChild(chains.lastChild);
  }

  const source = new EventSource("/live/stream" + window.location.search);
  source.addEventListener("row", (m) => addRow(JSON.parse(m.data)));
  source.addEventListener("chain", (m) => updateChain(JSON.parse(m.data)));
  source.addEventListener("ready", () => { state.textContent = "live"; state.classList.add("ok"); });
  source.addEventListener("dropped", (m) => {
    const n = JSON.parse(m.data).count;
    addRow({ at: new Date().toISOString(), account: "", device: "", kind: "_dropped",
             text: n + " event(s) dropped: this page fell behind" });
  });
  source.onerror = () => { state.textContent = "reconnecting…"; state.classList.remove("ok"); };
})();
