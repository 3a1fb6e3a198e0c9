// The operations page: the services and pipeline sections refresh themselves every 15 seconds
// (while the tab is visible) from the page's own rendering; the forms below are left alone.
(function () {
  "use strict";
  const REFRESH_MS = 15000;

  async function refresh() {
    if (document.hidden) return;
    const note = document.querySelector("[data-refreshed]");
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
      if (!response.ok) throw new Error(String(response.status));
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-refresh]").forEach((section) => {
        const replacement = fresh.querySelector(`[data-refresh="${section.dataset.refresh}"]`);
        if (replacement) section.replaceWith(replacement);
      });
      if (note) note.textContent = `Updated at ${new Date().toLocaleTimeString()}; refreshes every 15 seconds.`;
    } catch (err) {
      if (note) note.textContent = `Could not refresh (${err.message}); trying again in 15 seconds.`;
    }
  }

  document.addEventListener("DOMContentLoaded", () => setInterval(refresh, REFRESH_MS));
})();
