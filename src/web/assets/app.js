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
  // Forms: submitting an empty field leaves it out of the address.
  for (const form of document.querySelectorAll("form.query")) {
    form.addEventListener("submit", () => {
      for (const input of form.querySelectorAll("input")) {
        if (input.value === "") input.disabled = true;
      }
    });
  }
});
