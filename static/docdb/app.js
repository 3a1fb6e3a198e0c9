// Live processing status: poll the status endpoint while any shown document is not finished.
(function () {
  "use strict";
  const FINISHED = new Set(["ready", "failed"]);
  const POLL_MS = 2000;

  function pending() {
    return Array.from(document.querySelectorAll("[data-document-status]"))
      .filter((el) => !FINISHED.has(el.dataset.status));
  }

  function render(el, doc) {
    el.dataset.status = doc.status;
    el.className = "status status-" + doc.status;
    el.replaceChildren();
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = doc.status_label;
    el.append(badge);
    if (doc.status === "queued" || doc.status === "processing") {
      const bar = document.createElement("progress");
      bar.max = doc.pages_total || 1;
      bar.value = doc.pages_done;
      const text = document.createElement("span");
      text.className = "progress-text";
      text.textContent = doc.pages_total ? doc.pages_done + " / " + doc.pages_total + " pages" : "waiting for a worker";
      el.append(bar, text);
    } else if (doc.status === "failed") {
      const error = document.createElement("span");
      error.className = "error-text";
      error.textContent = doc.error;
      el.append(error);
    }
  }

  async function poll() {
    const waiting = pending();
    if (!waiting.length) return;
    const container = document.querySelector("[data-status-url]");
    const url = new URL(container.dataset.statusUrl, window.location.href);
    waiting.forEach((el) => url.searchParams.append("id", el.dataset.documentStatus));
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        let finished = false;
        for (const doc of body.documents) {
          const el = document.querySelector('[data-document-status="' + doc.id + '"]');
          if (!el) continue;
          if (!FINISHED.has(el.dataset.status) && FINISHED.has(doc.status)) finished = true;
          render(el, doc);
        }
        // A finished document gains thumbnails, pages or a Retry button: show them.
        if (finished) {
          window.location.reload();
          return;
        }
      }
    } catch (err) {
      // The server may be restarting; try again on the next tick.
    }
    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => window.setTimeout(poll, POLL_MS));
})();
