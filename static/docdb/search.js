// The search page: mode switches re-run the query, the hybrid balance slider, "More results",
// search by an image chosen or pasted, documents for the filter found by title as one types.
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
          if (!["document", "tag", "date_from", "date_to"].includes(key) || !value) return;
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

  // The document filter: what is typed asks the server for the person's ready documents with
  // that in their title; a chosen one becomes a chip holding the checkbox the form submits as
  // `document`, exactly as the list of checkboxes did.
  function setupDocumentFilter(fieldset) {
    const input = fieldset.querySelector("[data-doc-input]");
    const list = fieldset.querySelector("[data-doc-suggestions]");
    const chips = fieldset.querySelector("[data-doc-chips]");
    const url = fieldset.dataset.suggestUrl;
    let options = [];
    let active = -1;
    let timer = null;
    let asked = 0;

    const chosen = () =>
      new Set(Array.from(chips.querySelectorAll("input[name=document]")).map((box) => box.value));

    function close() {
      list.hidden = true;
      list.replaceChildren();
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      options = [];
      active = -1;
    }

    function highlight(index) {
      active = index;
      list.querySelectorAll("li").forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
      if (index >= 0) input.setAttribute("aria-activedescendant", `doc-option-${index}`);
    }

    function choose(option) {
      if (!chosen().has(option.id)) {
        const label = document.createElement("label");
        label.className = "doc-chip";
        label.dataset.docChip = "";
        const box = Object.assign(document.createElement("input"), {
          type: "checkbox", name: "document", value: option.id, checked: true,
        });
        const title = document.createElement("span");
        title.textContent = option.title;
        const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×" });
        remove.className = "js-only";
        remove.dataset.docRemove = "";
        remove.setAttribute("aria-label", `Remove ${option.title} from the filter`);
        label.append(box, " ", title, remove);
        chips.append(label);
      }
      input.value = "";
      close();
      input.focus();
    }

    function show(documents) {
      const have = chosen();
      options = documents.filter((doc) => !have.has(doc.id));
      list.replaceChildren();
      if (!options.length) {
        const li = document.createElement("li");
        li.className = "none";
        li.textContent = "No ready document has that in its title.";
        list.append(li);
      }
      options.forEach((doc, index) => {
        const li = document.createElement("li");
        li.id = `doc-option-${index}`;
        li.setAttribute("role", "option");
        li.textContent = doc.title;
        // mousedown, not click: the input keeps its focus, so the list is not closed first.
        li.addEventListener("mousedown", (event) => {
          event.preventDefault();
          choose(doc);
        });
        list.append(li);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(options.length ? 0 : -1);
    }

    async function ask() {
      const query = input.value.trim();
      const turn = ++asked;
      if (!query) return close();
      try {
        const response = await fetch(`${url}?q=${encodeURIComponent(query)}`, {
          headers: { Accept: "application/json" },
        });
        if (!response.ok) throw new Error(String(response.status));
        const body = await response.json();
        // An older answer arriving late does not replace a newer one.
        if (turn === asked) show(body.documents);
      } catch (err) {
        close();
      }
    }

    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(ask, 150);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" && options.length) {
        event.preventDefault();
        highlight((active + 1) % options.length);
      } else if (event.key === "ArrowUp" && options.length) {
        event.preventDefault();
        highlight((active - 1 + options.length) % options.length);
      } else if (event.key === "Enter" && !list.hidden) {
        // Enter picks the highlighted document; it does not submit the search.
        event.preventDefault();
        if (active >= 0) choose(options[active]);
      } else if (event.key === "Escape") {
        close();
      }
    });
    input.addEventListener("blur", () => setTimeout(close, 100));
    chips.addEventListener("click", (event) => {
      const remove = event.target.closest("[data-doc-remove]");
      if (!remove) return;
      event.preventDefault();
      remove.closest("[data-doc-chip]").remove();
      input.focus();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-search-form]");
    if (form) setupModes(form);
    const documents = document.querySelector("[data-doc-filter]");
    if (documents) setupDocumentFilter(documents);
    setupMore();
    const images = document.querySelector("[data-image-search]");
    if (images) setupImageSearch(images);
  });
})();
