// luma_nb galleries: Gallery, Storyboard and ClassGallery draw their cards with this module.
//
// State comes from the Python side (traitlets): `cards` (one dict per video), `final` (the
// storyboard's whole story), `heading`, `status` (the one status line of the view), `message`.
// A card shows its poster (an <img>) and its prompt. No <video> exists until the user presses
// play, so a gallery of hundreds of cards asks for no video bytes on load. A card whose video
// the browser cannot reach by URL asks the kernel for the bytes (a "play" message).

const STATES = {
  waiting: "waiting",
  submitting: "submitting…",
  running: "running",
  finished: "finished",
  failed: "failed",
  cancelled: "stopped watching",
  timeout: "still running",
  error: "could not follow",
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function withStart(url, start) {
  if (!url || !start || !(start > 0) || url.startsWith("blob:")) return url;
  return `${url.split("#")[0]}#t=${Number(start).toFixed(3).replace(/\.?0+$/, "")}`;
}

function render({ model, el: root }) {
  const blobs = new Map(); // card id -> object URL of bytes the kernel sent
  const waiting = new Map(); // card id -> [card element, ...] waiting for those bytes
  const playing = new Set(); // card ids whose player is open (kept across redraws)
  const players = new Map(); // card id -> its <video> (kept across redraws, never reloaded)

  const view = el("div", { class: "luma-gallery", "data-luma": "gallery" });
  root.append(view);

  function openPlayer(card, node) {
    const media = node.querySelector("[data-luma='media']");
    let player = players.get(card.id);
    if (!player) {
      const source = card.video ? withStart(card.video, card.start) : blobs.get(card.id);
      if (!source) {
        // The browser has no route to this video: the kernel sends its bytes.
        const list = waiting.get(card.id) || [];
        list.push(node);
        waiting.set(card.id, list);
        media.dataset.state = "loading";
        model.send({ type: "play", id: card.id });
        return;
      }
      player = el("video", {
        class: "luma-gallery-video",
        "data-luma": "video",
        controls: true,
        autoplay: true,
        playsinline: true,
        preload: "auto",
        poster: card.poster || undefined,
        src: source,
      });
      player.addEventListener("error", () => {
        // A player that cannot load keeps showing the poster, and says so.
        media.dataset.state = "broken";
        const why = media.querySelector("[data-luma='play-error']");
        if (why) why.textContent = "This video cannot be played here.";
      });
      players.set(card.id, player);
    }
    playing.add(card.id);
    media.dataset.state = "playing";
    media.replaceChildren(player);
  }

  model.on("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "video") return;
    const nodes = waiting.get(msg.id) || [];
    waiting.delete(msg.id);
    if (msg.error || !buffers || !buffers.length) {
      for (const node of nodes) {
        const media = node.querySelector("[data-luma='media']");
        if (media) media.dataset.state = "broken";
        const why = node.querySelector("[data-luma='play-error']");
        if (why) why.textContent = msg.error || "The video could not be loaded.";
      }
      return;
    }
    const buffer = buffers[0];
    const bytes = buffer.buffer ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : buffer;
    blobs.set(msg.id, URL.createObjectURL(new Blob([bytes], { type: msg.mime || "video/mp4" })));
    const card = (model.get("cards") || []).concat([model.get("final") || {}]).find((c) => c.id === msg.id);
    for (const node of nodes) {
      if (card && node.isConnected) openPlayer(card, node);
    }
  });

  function cardNode(card, options) {
    const state = card.state || "waiting";
    const node = el("figure", {
      class: `luma-gallery-card luma-gallery-${state}${options.wide ? " luma-gallery-wide" : ""}`,
      "data-luma": options.final ? "final" : "card",
      "data-task-id": card.id || undefined,
      "data-state": state,
      title: card.title || undefined,
    });
    const media = el("div", { class: "luma-gallery-media", "data-luma": "media", "data-state": "poster" });
    if (card.poster) {
      media.append(
        el("img", {
          class: "luma-gallery-poster",
          "data-luma": "poster",
          src: card.poster,
          alt: card.prompt ? `Poster: ${card.prompt}` : "Poster",
          loading: "lazy",
          decoding: "async",
        }),
      );
    } else {
      // No poster (the real service has none): a card with the prompt stands in.
      media.append(el("div", { class: "luma-gallery-placeholder", "data-luma": "poster", text: card.prompt || "" }));
    }
    const playable = state === "finished" && (card.video || card.embed);
    if (playable) {
      const button = el("button", {
        class: "luma-gallery-play",
        "data-luma": "play",
        type: "button",
        title: "Play",
        "aria-label": card.prompt ? `Play: ${card.prompt}` : "Play",
      });
      button.append(el("span", { class: "luma-gallery-play-icon", "aria-hidden": "true" }));
      button.addEventListener("click", () => openPlayer(card, node));
      media.append(button);
    } else if (state === "running" || state === "submitting") {
      const bar = el("div", { class: "luma-gallery-bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" });
      const pct = Math.max(0, Math.min(100, Number(card.percent) || 0));
      bar.setAttribute("aria-valuenow", String(Math.round(pct)));
      bar.append(el("div", { class: "luma-gallery-bar-fill", style: `width:${pct}%` }));
      media.append(bar);
    }
    media.append(el("div", { class: "luma-gallery-play-error", "data-luma": "play-error", role: "status" }));
    node.append(media);

    const caption = el("figcaption", { class: "luma-gallery-caption" });
    const top = el("div", { class: "luma-gallery-line" });
    if (card.label) top.append(el("span", { class: "luma-gallery-label", text: card.label }));
    const word = card.word || STATES[state] || state;
    if (state !== "finished") {
      top.append(el("span", { class: `luma-gallery-state luma-gallery-state-${state}`, text: word }));
    } else if (card.length) {
      top.append(el("span", { class: "luma-gallery-length", text: card.length }));
    }
    if (top.childNodes.length) caption.append(top);
    if (card.prompt && card.poster) caption.append(el("div", { class: "luma-gallery-prompt", text: card.prompt }));
    if (card.error) caption.append(el("div", { class: "luma-gallery-error", role: "alert", text: card.error }));
    node.append(caption);

    if (playing.has(card.id) && players.has(card.id) && playable) {
      media.dataset.state = "playing";
      media.replaceChildren(players.get(card.id));
    }
    return node;
  }

  function draw() {
    const cards = model.get("cards") || [];
    const final = model.get("final") || {};
    const kind = model.get("kind") || "gallery";
    view.dataset.kind = kind;
    view.classList.toggle("luma-gallery-projector", !!model.get("projector"));
    view.style.setProperty("--luma-gallery-columns", String(Math.max(1, model.get("columns") || 3)));
    view.style.setProperty("--luma-gallery-card-width", `${Math.max(120, model.get("card_width") || 300)}px`);

    const head = el("div", { class: "luma-gallery-head" });
    const heading = model.get("heading");
    if (heading) head.append(el("div", { class: "luma-gallery-heading", text: heading }));
    const status = el("div", {
      class: "luma-gallery-status",
      "data-luma": "status",
      role: "status",
      title: model.get("status_title") || undefined,
      text: model.get("status") || "",
    });
    head.append(status);
    if (model.get("can_stop")) {
      const stop = el("button", { class: "luma-gallery-button", "data-luma": "stop", type: "button", text: "Stop" });
      stop.disabled = !!model.get("stopped");
      stop.addEventListener("click", () => model.send({ type: "stop" }));
      head.append(stop);
    }

    const body = el("div", { class: kind === "storyboard" ? "luma-gallery-steps" : "luma-gallery-grid", "data-luma": "cards" });
    for (const card of cards) body.append(cardNode(card, {}));
    const parts = [head];
    if (cards.length) parts.push(body);
    else if (model.get("empty")) parts.push(el("div", { class: "luma-gallery-empty", text: model.get("empty") }));
    const message = model.get("message");
    if (message) parts.push(el("div", { class: "luma-gallery-message", role: "alert", "data-luma": "message", text: message }));
    if (final && final.id) {
      const whole = el("section", { class: "luma-gallery-final-wrap" });
      whole.append(el("div", { class: "luma-gallery-final-title", text: final.heading || "The whole story" }));
      whole.append(cardNode(final, { final: true, wide: true }));
      parts.push(whole);
    }
    view.replaceChildren(...parts);
  }

  for (const name of ["cards", "final", "heading", "status", "status_title", "message", "columns", "card_width", "empty", "can_stop", "stopped", "projector"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
  return () => {
    for (const url of blobs.values()) URL.revokeObjectURL(url);
    blobs.clear();
    players.clear();
  };
}

export default { render };
