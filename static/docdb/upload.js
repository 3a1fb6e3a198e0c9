// The upload page: drop or pick many PDFs; each uploads on its own with a progress bar, then
// shows its processing live (app.js polls the status of every document on the page).
(function () {
  "use strict";
  const PARALLEL_UPLOADS = 2;

  function sizeText(bytes) {
    if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)) + " KB";
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function setup() {
    const form = document.querySelector(".upload-form");
    const zone = document.querySelector("[data-dropzone]");
    const input = form && form.querySelector("input[type=file]");
    const list = document.querySelector("[data-upload-list]");
    if (!form || !zone || !input || !list) return;
    const { element, csrfToken, watch } = window.DocDB;
    const maxBytes = Number(form.dataset.maxBytes);
    const queue = [];
    let running = 0;

    function row(file) {
      const item = element("li", "upload-item");
      item.dataset.state = "waiting";
      const name = element("div", "upload-name");
      name.append(element("span", "name", file.name), element("span", "muted size", sizeText(file.size)));
      const state = element("div", "upload-state");
      const bar = element("progress");
      bar.max = 100;
      bar.value = 0;
      state.append(bar, element("span", "progress-text", "waiting to upload"));
      item.append(element("span", "file-icon", "PDF"), element("div", "upload-main"));
      item.lastChild.append(name, state);
      list.prepend(item);
      return item;
    }

    function setState(item, state, ...children) {
      item.dataset.state = state;
      item.querySelector(".upload-state").replaceChildren(...children);
    }

    function accepted(item, doc) {
      const name = item.querySelector(".name");
      const link = element("a", "", doc.title);
      link.href = doc.url;
      name.replaceChildren(link);
      const status = element("div");
      status.dataset.documentStatus = doc.id;
      status.dataset.links = "";
      window.DocDB.renderStatus(status, doc);
      setState(item, "accepted", status);
      watch();
    }

    function duplicate(item, body) {
      const message = element("span", "warn-text", "Already uploaded as ");
      const link = element("a", "", "“" + body.duplicate_of.title + "”");
      link.href = body.duplicate_of.url;
      message.append(link, document.createTextNode(" — this copy was not added."));
      setState(item, "duplicate", element("span", "badge", "Duplicate"), message);
    }

    function failed(item, file, reason, retryable) {
      const children = [element("span", "badge", "Not uploaded"), element("span", "error-text", reason)];
      if (retryable) {
        const again = element("button", "button small", "Try again");
        again.type = "button";
        again.addEventListener("click", () => enqueue(file, item));
        children.push(again);
      }
      setState(item, "rejected", ...children);
    }

    // The library chosen on the form ("" for the person's personal one, shown no choice).
    function chosenLibrary() {
      const select = form.querySelector("select[name=library]");
      return select ? select.value : "";
    }

    function hex(buffer) {
      return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, "0")).join("");
    }

    // Asks the server whether this person has the file already, by its SHA-256, so a duplicate
    // is caught before its bytes travel. crypto.subtle exists only on secure origins (HTTPS,
    // localhost); elsewhere, or when the question fails, the server's own check after the
    // upload answers instead.
    async function knownCopy(file) {
      if (!window.crypto || !window.crypto.subtle) return null;
      try {
        const digest = await window.crypto.subtle.digest("SHA-256", await file.arrayBuffer());
        const url = form.dataset.checksumUrl + "?sha256=" + hex(digest) + "&library=" + encodeURIComponent(chosenLibrary());
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        return response.ok ? (await response.json()).duplicate_of : null;
      } catch (error) {
        return null;
      }
    }

    async function send(file, item) {
      setState(item, "checking", element("span", "progress-text", "checking for an earlier copy…"));
      const original = await knownCopy(file);
      if (original) {
        duplicate(item, { duplicate_of: original });
        return;
      }
      await new Promise((resolve) => {
        const bar = element("progress");
        bar.max = 100;
        bar.value = 0;
        const text = element("span", "progress-text", "uploading 0%");
        setState(item, "uploading", bar, text);
        const data = new FormData();
        data.append("file", file, file.name);
        data.append("library", chosenLibrary());
        const xhr = new XMLHttpRequest();
        xhr.open("POST", form.dataset.uploadUrl);
        xhr.setRequestHeader("X-CSRFToken", csrfToken());
        xhr.setRequestHeader("Accept", "application/json");
        xhr.responseType = "json";
        xhr.upload.addEventListener("progress", (event) => {
          if (!event.lengthComputable) return;
          const percent = Math.round((100 * event.loaded) / event.total);
          bar.value = percent;
          text.textContent = percent < 100 ? "uploading " + percent + "%" : "checking the file…";
        });
        xhr.addEventListener("load", () => {
          const body = xhr.response || {};
          if (xhr.status === 201) accepted(item, body.document);
          else if (xhr.status === 409 && body.duplicate_of) duplicate(item, body);
          else if ((xhr.status === 400 || xhr.status === 413) && body.error) failed(item, file, body.error, false);
          else failed(item, file, "The server answered " + xhr.status + ".", true);
          resolve();
        });
        xhr.addEventListener("error", () => {
          failed(item, file, "The connection broke during the upload.", true);
          resolve();
        });
        xhr.send(data);
      });
    }

    function next() {
      while (running < PARALLEL_UPLOADS && queue.length) {
        const [file, item] = queue.shift();
        running += 1;
        send(file, item).then(() => {
          running -= 1;
          next();
        });
      }
    }

    function enqueue(file, item) {
      queue.push([file, item]);
      next();
    }

    function add(files) {
      for (const file of files) {
        const item = row(file);
        if (maxBytes && file.size > maxBytes) {
          failed(item, file, "Larger than the " + form.dataset.maxMb + " MB limit.", false);
        } else if (!file.size) {
          failed(item, file, "The file is empty.", false);
        } else {
          enqueue(file, item);
        }
      }
    }

    input.addEventListener("change", () => {
      add(Array.from(input.files));
      input.value = "";
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      add(Array.from(input.files));
      input.value = "";
    });
    ["dragenter", "dragover"].forEach((type) =>
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      })
    );
    ["dragleave", "dragend"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("dragging");
      add(Array.from(event.dataTransfer.files));
    });
    // Leaving while files are still being sent (or wait their turn) would lose them: the
    // browser asks first. Files already sent go on in the background.
    window.addEventListener("beforeunload", (event) => {
      if (running || queue.length) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
    // A file dropped beside the zone must not make the browser leave the page to show it.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
