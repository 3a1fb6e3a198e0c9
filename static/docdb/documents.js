// The documents list's selection: "select all on this page", the count of ticked documents,
// the tag field only for the tag actions, the library only for moving, and a question before
// deleting.
(function () {
  "use strict";

  function setup(form) {
    const boxes = () => Array.from(document.querySelectorAll("input[data-select]"));
    const all = document.querySelector("[data-select-all]");
    const count = form.querySelector("[data-bulk-count]");
    const action = form.querySelector("[data-bulk-action]");
    const tag = form.querySelector("[data-bulk-tag]");
    const tagInput = tag.querySelector("input");
    const library = form.querySelector("[data-bulk-library]");

    function update() {
      const ticked = boxes().filter((box) => box.checked).length;
      count.textContent = ticked
        ? `${ticked} selected:`
        : "Tick documents to act on them:";
      if (all) {
        all.checked = ticked > 0 && ticked === boxes().length;
        all.indeterminate = ticked > 0 && ticked < boxes().length;
      }
      const tagging = action.value === "tag" || action.value === "untag";
      tag.hidden = !tagging;
      tagInput.required = tagging;
      if (library) library.hidden = action.value !== "move";
    }

    if (all) {
      all.addEventListener("change", () => {
        boxes().forEach((box) => (box.checked = all.checked));
        update();
      });
    }
    document.addEventListener("change", (event) => {
      if (event.target.matches("input[data-select]") || event.target === action) update();
    });
    form.addEventListener("submit", (event) => {
      const ticked = boxes().filter((box) => box.checked).length;
      if (action.value === "delete" && ticked) {
        const question = `Delete ${ticked} document${ticked === 1 ? "" : "s"}? This cannot be undone.`;
        if (!window.confirm(question)) event.preventDefault();
      }
    });
    update();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("[data-bulk]");
    if (form) setup(form);
  });
})();
