// gpupool's pages: the few things that update without a full reload. Everything works without
// this script; it only keeps live parts fresh (a job's state and output, the submit form's quote).
"use strict";

const LIVE_EVERY_MS = 3000;
const LOG_EVERY_MS = 2000;
const QUOTE_AFTER_MS = 300;

async function fetchText(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  return { ok: response.ok, status: response.status, text: await response.text() };
}

// An element with data-live="<url>" is replaced by what that URL answers, every few seconds,
// until the job it shows has ended.
function keepLive(element) {
  const url = element.dataset.live;
  const tick = async () => {
    try {
      const answer = await fetchText(url);
      if (answer.ok) {
        const fresh = document.createElement("template");
        fresh.innerHTML = answer.text;
        element.replaceChildren(fresh.content);
      }
    } catch (error) { /* the next tick tries again */ }
    const state = element.querySelector("[data-state]");
    const ended = state && ["succeeded", "failed", "cancelled", "timed_out", "rejected", "preempted"].includes(state.dataset.state);
    if (!ended) setTimeout(tick, LIVE_EVERY_MS);
  };
  setTimeout(tick, LIVE_EVERY_MS);
}

// <pre data-log="<url>"> shows the job's output so far, kept scrolled to the end while the
// reader has not scrolled up.
function tailLog(pre) {
  const url = pre.dataset.log;
  let last = null;
  const tick = async () => {
    let ended = false;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      const text = await response.text();
      let shown;
      if (response.ok) {
        shown = text.length ? text : pre.dataset.empty;
      } else {
        let detail = text;
        try { detail = JSON.parse(text).detail || text; } catch (error) { /* plain text */ }
        shown = pre.dataset.unavailable + detail;
      }
      if (shown !== last) {
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
        pre.textContent = shown;
        if (atEnd) pre.scrollTop = pre.scrollHeight;
        last = shown;
      }
      const state = document.querySelector("[data-state]");
      ended = state && ["succeeded", "failed", "cancelled", "timed_out", "rejected", "preempted"].includes(state.dataset.state) && response.ok;
    } catch (error) { /* the next tick tries again */ }
    if (!ended) setTimeout(tick, LOG_EVERY_MS);
  };
  tick();
}

// The submit form asks for a fresh quote whenever a field that prices the job changes.
function liveQuote(form) {
  const target = document.getElementById("quote");
  if (!target) return;
  let timer = null;
  const refresh = async () => {
    const params = new URLSearchParams();
    for (const name of ["project", "gpus", "time_limit"]) {
      const field = form.elements.namedItem(name);
      if (field) params.append(name, field.value);
    }
    for (const box of form.querySelectorAll("input[name=flavors]:checked")) params.append("flavors", box.value);
    try {
      const answer = await fetchText(form.dataset.quote + "?" + params.toString());
      const fresh = document.createElement("template");
      fresh.innerHTML = answer.text;
      const part = answer.ok ? fresh.content : fresh.content.querySelector("[role=alert]");
      if (part) target.replaceChildren(part);
    } catch (error) { /* keep the last quote */ }
  };
  form.addEventListener("input", (event) => {
    if (!["project", "gpus", "time_limit", "flavors"].includes(event.target.name)) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, QUOTE_AFTER_MS);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(keepLive);
  document.querySelectorAll("pre[data-log]").forEach(tailLog);
  document.querySelectorAll("form[data-quote]").forEach(liveQuote);
});
