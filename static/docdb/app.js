// Shared by every page: the "/" shortcut, live document status, Retry buttons, image fade-ins.
(function () {
  "use strict";
  const FINISHED = new Set(["ready", "failed"]);
  const POLL_MS = 1500;
  let polling = false;

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function duration(seconds) {
    if (seconds < 60) return "less than a minute left";
    const minutes = Math.round(seconds / 60);
    if (minutes < 90) return "about " + minutes + " min left";
    return "about " + Math.round(minutes / 60) + " h left";
  }

  function retryForm(doc) {
    const form = element("form", "inline");
    form.method = "post";
    form.action = doc.retry_url;
    form.dataset.retry = "";
    const token = element("input");
    token.type = "hidden";
    token.name = "csrfmiddlewaretoken";
    token.value = csrfToken();
    const button = element("button", "button small", "Retry");
    button.type = "submit";
    form.append(token, button);
    return form;
  }

  // Draw one document's state; the server sends plain values, all shown as text (never HTML).
  function renderStatus(el, doc, worker) {
    el.dataset.status = doc.status;
    el.className = "status status-" + doc.status;
    el.replaceChildren(element("span", "badge", doc.status_label));
    const noWorker = worker && !worker.alive;
    if (doc.status === "queued") {
      let text = doc.queue_position ? "#" + doc.queue_position + " in the queue" : "waiting for its turn";
      if (noWorker) text += " · no worker is running";
      el.append(element("span", "progress-text" + (noWorker ? " warn-text" : ""), text));
    } else if (doc.status === "processing") {
      const bar = element("progress");
      bar.max = doc.pages_total || 1;
      bar.value = doc.pages_done;
      let text = doc.pages_total ? doc.pages_done + " / " + doc.pages_total + " pages" : "reading the PDF…";
      if (doc.eta_seconds !== null && doc.eta_seconds !== undefined) text += " · " + duration(doc.eta_seconds);
      else if (doc.pages_total) text += " · estimating time left";
      el.append(bar, element("span", "progress-text", text));
    } else if (doc.status === "failed") {
      el.append(element("span", "error-text", doc.error), retryForm(doc));
    } else if (doc.status === "ready" && el.hasAttribute("data-links")) {
      const link = element("a", "small", "Open →");
      link.href = doc.url;
      el.append(element("span", "progress-text", doc.pages_total + " page" + (doc.pages_total === 1 ? "" : "s")), link);
    }
  }

  function updateRow(el, doc) {
    const row = el.closest("[data-document-row]");
    if (!row) return;
    const pages = row.querySelector("[data-pages]");
    if (pages && doc.pages_total) pages.textContent = doc.pages_total;
    const thumb = row.querySelector("[data-thumb]");
    if (thumb && doc.thumbnail_url && !thumb.querySelector("img")) {
      const img = element("img");
      img.src = doc.thumbnail_url;
      img.alt = "";
      img.width = 48;
      thumb.replaceChildren(img);
    }
  }

  function showWorkerWarning(worker) {
    const banner = document.querySelector("[data-worker-warning]");
    if (!banner || !worker) return;
    banner.hidden = worker.alive;
    banner.textContent = worker.alive ? "" : worker.message;
  }

  function pending() {
    return Array.from(document.querySelectorAll("[data-document-status]")).filter(
      (el) => !FINISHED.has(el.dataset.status)
    );
  }

  async function poll() {
    const waiting = pending();
    const base = document.body.dataset.statusUrl;
    if (!waiting.length || !base) {
      polling = false;
      return;
    }
    const url = new URL(base, window.location.href);
    new Set(waiting.map((el) => el.dataset.documentStatus)).forEach((id) => url.searchParams.append("id", id));
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        showWorkerWarning(body.worker);
        for (const doc of body.documents) {
          document.querySelectorAll('[data-document-status="' + doc.id + '"]').forEach((el) => {
            const finishing = !FINISHED.has(el.dataset.status) && FINISHED.has(doc.status);
            renderStatus(el, doc, body.worker);
            updateRow(el, doc);
            el.dispatchEvent(new CustomEvent("docdb:status", { bubbles: true, detail: doc }));
            // A finished document's own page gains its page grid: show it.
            if (finishing && el.closest("[data-reload-on-finish]")) window.location.reload();
          });
        }
        if (!pending().length) showWorkerWarning({ alive: true });
      }
    } catch (err) {
      // The server may be restarting; the next tick tries again.
    }
    window.setTimeout(poll, POLL_MS);
  }

  function watch() {
    if (polling) return;
    polling = true;
    poll();
  }

  // Retry without leaving the page; the form still works without scripts.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-retry")) return;
    event.preventDefault();
    const status = form.closest("[data-document-status]");
    form.querySelector("button").disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await response.json();
      if (status) renderStatus(status, body.document);
      watch();
    } catch (err) {
      form.submit();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    event.preventDefault();
    const box = document.querySelector("[data-search-input]");
    if (box) {
      box.focus();
      box.select();
    } else if (document.body.dataset.searchUrl) {
      window.location.href = document.body.dataset.searchUrl;
    }
  });

  // A sharper image fades in over its placeholder once loaded (load events do not bubble,
  // but they can be caught on the way down).
  document.addEventListener(
    "load",
    (event) => {
      if (event.target instanceof HTMLImageElement && event.target.classList.contains("sharp")) {
        event.target.classList.add("loaded");
      }
    },
    true
  );

  document.addEventListener("change", (event) => {
    const form = event.target.form;
    if (form && form.hasAttribute("data-autosubmit")) form.submit();
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("img.sharp").forEach((img) => {
      if (img.complete && img.naturalWidth) img.classList.add("loaded");
    });
    watch();
  });

  window.DocDB = { csrfToken, element, renderStatus, watch };
})();
