// The page view: similarity maps over the page, similar pages, arrow keys for previous/next.
(function () {
  "use strict";

  // The weaker part of the range stays clear, so the regions that matched stand out; they
  // turn from yellow to red, multiplied over the page so the text underneath stays readable.
  const CLEAR_BELOW = 0.4;
  function color(value) {
    const v = Math.max(0, Math.min(1, value));
    const strength = v < CLEAR_BELOW ? 0 : Math.pow((v - CLEAR_BELOW) / (1 - CLEAR_BELOW), 1.5);
    return [255, Math.round(225 - 200 * strength), Math.round(70 - 70 * strength), Math.round(225 * strength)];
  }

  function draw(canvas, rows, cols, cells) {
    canvas.width = cols;
    canvas.height = rows;
    const context = canvas.getContext("2d");
    const image = context.createImageData(cols, rows);
    cells.forEach((value, index) => image.data.set(color(value), index * 4));
    context.putImageData(image, 0, 0);
  }

  function setupMaps() {
    const bar = document.querySelector("[data-maps]");
    if (!bar || bar.classList.contains("off")) return;
    const form = bar.querySelector("[data-maps-form]");
    const chips = bar.querySelector("[data-token-chips]");
    const status = bar.querySelector("[data-maps-status]");
    const canvas = document.querySelector("[data-heatmap]");
    const legend = document.querySelector("[data-legend]");
    const { element } = window.DocDB;
    let shown = "";
    // The token a person picked for a query stays picked on the next and previous pages.
    const remembered = (query) => "docdb-map-token:" + query;

    function select(button, maps, cells) {
      chips.querySelectorAll("button").forEach((other) => other.setAttribute("aria-pressed", String(other === button)));
      if (button && shown) sessionStorage.setItem(remembered(shown), button.textContent);
      if (!cells) {
        canvas.hidden = true;
        legend.hidden = true;
        return;
      }
      draw(canvas, maps.rows, maps.cols, cells);
      canvas.hidden = false;
      legend.hidden = false;
    }

    function chip(label, title, maps, cells) {
      const button = element("button", "chip", label);
      button.type = "button";
      button.title = title;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => select(button, maps, cells));
      return button;
    }

    async function load(query) {
      shown = "";
      select(null, null, null);
      chips.replaceChildren();
      if (!query) {
        status.textContent = "Type a query to see which regions of this page match each of its words.";
        return;
      }
      status.textContent = "Scoring the page's patches against each query token…";
      const url = new URL(bar.dataset.mapsUrl, window.location.href);
      url.searchParams.set("q", query);
      let maps;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        maps = await response.json();
      } catch (err) {
        status.textContent = "The maps could not be loaded. Try again in a moment.";
        return;
      }
      if (maps.error) {
        status.textContent = maps.error;
        return;
      }
      const off = chip("Off", "Hide the map", maps, null);
      const all = chip("All tokens", "Every query token together", maps, maps.combined);
      all.classList.add("chip-all");
      chips.append(off, all);
      maps.tokens.forEach((token, index) =>
        chips.append(chip(token.text, "Query token " + (index + 1) + ": where “" + token.text + "” matches", maps, token.cells))
      );
      shown = query;
      const picked = sessionStorage.getItem(remembered(query));
      const again = [...chips.querySelectorAll("button")].find((b) => b.textContent === picked);
      if (again) again.click();
      else off.setAttribute("aria-pressed", "true");
      status.textContent = "Pick a token to see where it matches this page (the model's " + maps.cols + " × " + maps.rows + " patch grid).";
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      load(form.elements.q.value.trim());
    });
    if (form.elements.q.value.trim()) load(form.elements.q.value.trim());
  }

  async function setupSimilar() {
    const aside = document.querySelector("[data-similar-url]");
    if (!aside) return;
    const body = aside.querySelector("[data-similar-body]");
    try {
      const response = await fetch(aside.dataset.similarUrl, { headers: { Accept: "text/html" } });
      if (!response.ok) throw new Error(String(response.status));
      body.innerHTML = await response.text(); // our own server-rendered, escaped fragment
    } catch (err) {
      body.textContent = "Similar pages could not be loaded.";
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const rel = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
    const link = rel && document.querySelector("a[rel=" + rel + "]");
    if (link) window.location.href = link.href;
  });

  document.addEventListener("DOMContentLoaded", () => {
    setupMaps();
    setupSimilar();
  });
})();
