// The search page: mode switches re-run the query, the hybrid balance slider, "More results",
// search by an image chosen or pasted.
(function () {
  "use strict";

  function setupModes(form) {
    const alpha = form.querySelector("[data-alpha]");
    const range = alpha && alpha.querySelector("input[type=range]");
    const output = alpha && alpha.querySelector("[data-alpha-value]");
    const query = form.querySelector("[data-search-input]");
    // Arrow keys move through the modes as in any radio group: the search runs again on Enter
    // or Space, not at every step; a click runs it at once.
    let byArrow = false;
    form.querySelectorAll("input[name=mode]").forEach((radio) => {
      radio.addEventListener("keydown", (event) => {
        byArrow = event.key.startsWith("Arrow");
        if ((event.key === "Enter" || event.key === " ") && query.value.trim()) {
          event.preventDefault();
          form.requestSubmit();
        }
      });
      radio.addEventListener("change", () => {
        const hybrid = radio.value === "hybrid";
        if (alpha) {
          alpha.hidden = !hybrid;
          range.disabled = !hybrid;
        }
        if (!byArrow && query.value.trim()) form.requestSubmit();
        byArrow = false;
      });
    });
    if (range && output) {
      const show = () => (output.textContent = Number(range.value).toFixed(2));
      range.addEventListener("input", show);
      range.addEventListener("change", () => query.value.trim() && form.requestSubmit());
      show();
    }
  }

  function setupMore() {
    document.addEventListener("click", async (event) => {
      const link = event.target.closest("[data-more-link]");
      if (!link) return;
      event.preventDefault();
      link.setAttribute("aria-busy", "true");
      link.textContent = "Loading…";
      const url = new URL(link.href, window.location.href);
      url.searchParams.set("partial", "1");
      try {
        const response = await fetch(url, { headers: { Accept: "text/html" } });
        if (!response.ok) throw new Error(String(response.status));
        const fragment = new DOMParser().parseFromString(await response.text(), "text/html");
        const cards = fragment.querySelectorAll("[data-results] > li");
        document.querySelector("[data-results]").append(...cards);
        // The button is replaced: keyboard focus goes on to the first new result.
        const next = cards.length && cards[0].querySelector("a");
        if (next) next.focus();
        document.querySelector("[data-more]").replaceWith(fragment.querySelector("[data-more]"));
        const last = document.querySelector("[data-last-rank]");
        if (last) last.textContent = document.querySelectorAll("[data-results] > li").length;
      } catch (err) {
        window.location.href = link.href;
      }
    });
  }

  function setupImageSearch(form) {
    const input = form.querySelector("[data-image-input]");
    // With a script the image goes as soon as it is chosen; the button is for pages without.
    form.classList.add("js");
    const send = () => {
      // The filters chosen in the search form apply to the image too.
      const search = document.querySelector("[data-search-form]");
      form.querySelectorAll("[data-copied]").forEach((element) => element.remove());
      if (search) {
        new FormData(search).forEach((value, key) => {
          if (!["document", "date_from", "date_to"].includes(key) || !value) return;
          const hidden = document.createElement("input");
          Object.assign(hidden, { type: "hidden", name: key, value: value });
          hidden.dataset.copied = "";
          form.append(hidden);
        });
      }
      form.setAttribute("aria-busy", "true");
      form.submit();
    };
    input.addEventListener("change", () => input.files.length && send());
    document.addEventListener("paste", (event) => {
      const images = Array.from(event.clipboardData ? event.clipboardData.files : []).filter(
        (file) => file.type.startsWith("image/")
      );
      // Text pastes into the query as usual; an image is searched with.
      if (!images.length) return;
      event.preventDefault();
      const transfer = new DataTransfer();
      transfer.items.add(images[0]);
      input.files = transfer.files;
      send();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-search-form]");
    if (form) setupModes(form);
    setupMore();
    const images = document.querySelector("[data-image-search]");
    if (images) setupImageSearch(images);
  });
})();
