// Shared by every page: the "/" shortcut, live document status, Retry buttons, image fade-ins.
(function () {
  "use strict";
  const FINISHED = new Set(["ready", "failed", "cancelled"]);
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

  // Draw one document's state from the server's own rendering of it (templates/documents/
  // _status.html, Django-escaped), so a polled status looks exactly like a rendered page.
  function renderStatus(el, doc, worker) {
    const holder = document.createElement("template");
    holder.innerHTML = doc.status_html.trim();
    const fresh = holder.content.firstElementChild;
    el.className = fresh.className;
    el.dataset.status = doc.status;
    el.dataset.phase = doc.phase;
    el.replaceChildren(...fresh.childNodes);
    el.querySelectorAll("form").forEach((form) => {
      if (form.querySelector("input[name=csrfmiddlewaretoken]")) return;
      const token = element("input");
      token.type = "hidden";
      token.name = "csrfmiddlewaretoken";
      token.value = csrfToken();
      form.prepend(token);
    });
    const noWorker = el.querySelector("[data-no-worker]");
    if (noWorker) noWorker.hidden = !worker || worker.alive;
    if (doc.status === "ready" && el.hasAttribute("data-links")) {
      const link = element("a", "small", "Open →");
      link.href = doc.url;
      el.append(link);
    }
  }

  // Finished documents say so while the person looks elsewhere: a toast, and a count in the
  // tab's title until the page is looked at again.
  let unseen = 0;
  const baseTitle = document.title;
  function announce(doc) {
    const region = document.querySelector("[data-toasts]");
    if (region) {
      const text = "“" + doc.title + "” " + (doc.status === "ready" ? "is ready" : "failed");
      const toast = element("a", "toast toast-" + doc.status, text);
      toast.href = doc.url;
      region.append(toast);
      window.setTimeout(() => toast.remove(), 8000);
    }
    if (document.hidden) {
      unseen += 1;
      document.title = "(" + unseen + " finished) " + baseTitle;
    }
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      unseen = 0;
      document.title = baseTitle;
    }
  });

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
            if (finishing && doc.status !== "cancelled") announce(doc);
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

  // Retry and cancel without leaving the page; the forms still work without scripts.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (!form.hasAttribute("data-retry") && !form.hasAttribute("data-cancel")) return;
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

  // "5 minutes ago" stays true while the page is open: <time data-relative> is redrawn from its
  // datetime every half minute (the server's wording is what shows without JavaScript).
  const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60]];
  const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

  function relativeTimes() {
    document.querySelectorAll("time[data-relative]").forEach((el) => {
      const seconds = (Date.parse(el.dateTime) - Date.now()) / 1000;
      if (Number.isNaN(seconds)) return;
      const unit = UNITS.find(([, size]) => Math.abs(seconds) >= size);
      el.textContent = unit
        ? relative.format(Math.round(seconds / unit[1]), unit[0])
        : "just now";
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("img.sharp").forEach((img) => {
      if (img.complete && img.naturalWidth) img.classList.add("loaded");
    });
    watch();
    relativeTimes();
    setInterval(relativeTimes, 30000);
  });

  window.DocDB = { csrfToken, element, renderStatus, watch };
})();
