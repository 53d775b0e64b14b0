// exim-pilot's web view: progressive enhancements only; every page works
// without this script. Served from the binary (no inline script: the
// Content-Security-Policy allows scripts from this origin only).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // The log page: a button to wrap long lines, remembered per browser.
  const lines = document.querySelector("pre.lines");
  const toggle = document.querySelector("[data-wrap-toggle]");
  if (lines && toggle) {
    toggle.hidden = false;
    const apply = (on) => {
      lines.classList.toggle("wrap", on);
      toggle.textContent = on ? "Do not wrap lines" : "Wrap long lines";
    };
    apply(localStorage.getItem("exim-pilot-wrap") === "1");
    toggle.addEventListener("click", () => {
      const on = !lines.classList.contains("wrap");
      localStorage.setItem("exim-pilot-wrap", on ? "1" : "0");
      apply(on);
    });
  }
  // The live page: lines as they are committed, over server-sent events,
  // resumed after a pause from the last chunk seen (nothing is missed).
  const live = document.getElementById("live");
  const pause = document.getElementById("live-pause");
  if (live && pause && window.EventSource) {
    const state = document.getElementById("live-state");
    const KEEP = 1000;
    let after = live.dataset.after;
    let source = null;
    const open = () => {
      source = new EventSource("/api/v1/live?after=" + encodeURIComponent(after));
      source.onmessage = (event) => {
        after = event.lastEventId || after;
        const lines = JSON.parse(event.data);
        live.append(lines.join("\n") + "\n");
        const text = live.textContent.split("\n");
        if (text.length > KEEP + 1) live.textContent = text.slice(-KEEP - 1).join("\n");
        state.textContent = " " + lines.length + " new line(s) at " + new Date().toLocaleTimeString();
      };
      source.onerror = () => { state.textContent = " reconnecting..."; };
    };
    pause.hidden = false;
    pause.addEventListener("click", () => {
      if (source) {
        source.close();
        source = null;
        pause.textContent = "Resume";
        state.textContent = " paused";
      } else {
        open();
        pause.textContent = "Pause";
        state.textContent = "";
      }
    });
    open();
  }
  // Forms: submitting an empty field leaves it out of the address.
  for (const form of document.querySelectorAll("form.query")) {
    form.addEventListener("submit", () => {
      for (const input of form.querySelectorAll("input")) {
        if (input.value === "") input.disabled = true;
      }
    });
  }
});
