// luma_nb's views: the extend form and the progress card (one ES module, no build step).
//
// State comes from the widget's synced traits; the view only sets text (never HTML from
// data), sends field edits as trait updates and actions as messages ({type: "submit"}, ...).
// Python validates and submits. Stable hooks for tests and styles: data-luma="...".

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(el, visible) {
  el.hidden = !visible;
}

// Keys typed in our inputs are ours: JupyterLab's shortcuts (a, b, dd, Enter) must not fire.
function keepKeys(el) {
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  el.addEventListener("keydown", (event) => event.stopPropagation());
}

// -- a text field bound to a trait ---------------------------------------------------------

function bindText(model, input, name) {
  input.value = model.get(name) || "";
  input.addEventListener("input", () => {
    model.set(name, input.value);
    model.save_changes();
  });
  const update = () => {
    const value = model.get(name) || "";
    if (input.value !== value) input.value = value;
  };
  model.on(`change:${name}`, update);
  return () => model.off(`change:${name}`, update);
}

// -- progress cards (the form's and the progress view's) ----------------------------------

function posterCard(item) {
  // Where no poster image exists: the whole prompt on a plain card (no video bytes loaded).
  return h("span", { class: "luma-poster luma-poster-text", "data-luma": "poster-text" },
    h("span", {}, item.prompt || item.title || item.task_id));
}

function makeCard(card, send, hooks) {
  const title = h("div", { class: "luma-card-title", "data-luma": "card-title" });
  const sub = h("div", { class: "luma-card-sub" });
  const fill = h("div", { class: "luma-bar-fill" });
  const bar = h("div", {
    class: "luma-bar", "data-luma": "progress", role: "progressbar",
    "aria-valuemin": "0", "aria-valuemax": "100",
  }, fill);
  const words = h("span", { class: "luma-card-words", "data-luma": "card-status" });
  const timing = h("span", { class: "luma-card-timing" });
  const cancel = h("button", {
    class: "luma-button luma-quiet", "data-luma": "cancel", type: "button",
    title: "Stops watching; the job keeps running at the service (it cannot be stopped there).",
    onclick: () => { cancel.disabled = true; send({ type: "cancel", task_id: card.task_id }); },
  }, "Cancel");
  const status = h("div", { class: "luma-card-status" }, words, timing, cancel);
  const message = h("div", { class: "luma-msg", "data-luma": "card-message", role: "status" });
  const player = h("div", { class: "luma-player" });
  const save = h("button", {
    class: "luma-button", "data-luma": "save", type: "button",
    onclick: () => send({ type: "save", task_id: card.task_id }),
  }, "Save MP4");
  const extend = h("button", {
    class: "luma-button luma-primary", "data-luma": "extend-this", type: "button",
    onclick: () => hooks.extend(card.task_id, root),
  }, "Extend this");
  const actions = h("div", { class: "luma-actions" }, extend, save);
  const root = h("div", { class: "luma-card", "data-luma": "card" },
    title, sub, bar, status, message, player, actions);
  return { root, title, sub, bar, fill, words, timing, cancel, message, player, save, extend, actions };
}

function updateCard(parts, card) {
  parts.root.dataset.taskId = card.task_id;
  parts.root.dataset.parentId = card.parent_task_id || "";
  parts.root.dataset.state = card.state;
  parts.title.textContent = card.title;
  parts.title.title = card.prompt || "";
  parts.sub.textContent = card.continues || "";
  parts.sub.title = `task ${card.task_id}` + (card.parent_task_id ? ` · extends ${card.parent_task_id}` : "");
  const pct = Math.max(0, Math.min(100, card.pct || 0));
  parts.bar.setAttribute("aria-valuenow", String(pct));
  parts.bar.dataset.state = card.state;
  parts.bar.classList.toggle("luma-waiting", card.state === "watching" && pct === 0);
  parts.fill.style.width = `${card.state === "watching" && pct === 0 ? 100 : pct}%`;
  parts.words.textContent = card.words;
  parts.timing.textContent = card.timing ? ` · ${card.timing}` : "";
  show(parts.cancel, card.can_cancel);
  parts.message.textContent = card.message || "";
  parts.message.dataset.kind = card.kind || "info";
  show(parts.message, Boolean(card.message));
  const video = card.video;
  if (video && video.src && !parts.video) {
    const attrs = {
      src: video.src, controls: true, preload: "metadata", playsinline: true,
      "data-luma": "video", "data-route": video.route || "direct", title: video.title || null,
    };
    if (video.poster) attrs.poster = video.poster;
    if (video.width) attrs.width = String(video.width);
    parts.video = h("video", attrs);
    parts.player.append(parts.video);
  }
  show(parts.actions, card.can_extend || card.can_save);
  parts.save.disabled = !card.can_save;
  show(parts.extend, card.can_extend);
}

function renderCards(container, cards, send, hooks, known) {
  const seen = new Set();
  let previous = null;
  for (const card of cards) {
    seen.add(card.task_id);
    let parts = known.get(card.task_id);
    if (!parts) {
      parts = makeCard(card, send, hooks);
      known.set(card.task_id, parts);
    }
    updateCard(parts, card);
    const next = previous ? previous.nextSibling : container.firstChild;
    if (parts.root !== next) container.insertBefore(parts.root, next);
    previous = parts.root;
  }
  for (const [taskId, parts] of known) {
    if (!seen.has(taskId)) {
      parts.root.remove();
      known.delete(taskId);
    }
  }
}

// -- the progress view ----------------------------------------------------------------------

function renderProgress(model, el) {
  const cardsBox = h("div", { class: "luma-cards", "data-luma": "cards" });
  const root = h("div", { class: "luma luma-progress", "data-luma": "progress-view" }, cardsBox);
  keepKeys(root);
  const where = model.get("where");
  if (where) root.title = where;
  root.dataset.service = model.get("service") || "";
  el.append(root);
  const known = new Map();
  let box = null;
  const send = (content) => model.send(content);
  const extendBox = (taskId, cardRoot) => {
    if (box) box.root.remove();
    const area = h("textarea", {
      class: "luma-input luma-prompt", rows: "2", "data-luma": "prompt",
      placeholder: "What happens next?", "aria-label": "What happens next",
    });
    const error = h("div", { class: "luma-msg", "data-kind": "error", "data-luma": "message" });
    const go = () => {
      send({ type: "extend", task_id: taskId, prompt: area.value });
    };
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        go();
      }
    });
    const button = h("button", {
      class: "luma-button luma-primary", type: "button", "data-luma": "submit", onclick: go,
    }, "Extend");
    box = {
      root: h("div", { class: "luma-extend-box", "data-luma": "extend-box" },
        h("label", { class: "luma-step" }, "What happens next?", area),
        h("div", { class: "luma-actions" }, button,
          h("span", { class: "luma-hint" }, "Ctrl+Enter")),
        error),
      area, error,
    };
    cardRoot.after(box.root);
    area.focus();
  };
  const draw = () => {
    renderCards(cardsBox, model.get("cards") || [], send, { extend: extendBox }, known);
  };
  const drawError = () => {
    if (!box) return;
    const text = model.get("extend_error") || "";
    box.error.textContent = text;
    show(box.error, Boolean(text));
  };
  const drawAfterExtend = () => {
    // A new card came: the prompt box has done its work.
    if (box && !model.get("extend_error")) {
      box.root.remove();
      box = null;
    }
    draw();
  };
  model.on("change:cards", drawAfterExtend);
  model.on("change:extend_error", drawError);
  draw();
  return () => {
    model.off("change:cards", drawAfterExtend);
    model.off("change:extend_error", drawError);
  };
}

// -- the extend form --------------------------------------------------------------------------

function field(label, input, name) {
  const error = h("div", { class: "luma-msg", "data-kind": "error", "data-luma": `error-${name}` });
  const preview = h("img", { class: "luma-preview", alt: "", "data-luma": `preview-${name}`, referrerpolicy: "no-referrer" });
  show(error, false);
  show(preview, false);
  return {
    row: h("label", { class: "luma-field" }, h("span", { class: "luma-label" }, label), input, error, preview),
    error, preview,
  };
}

function renderForm(model, el) {
  const offs = [];
  const on = (name, fn) => {
    model.on(`change:${name}`, fn);
    offs.push(() => model.off(`change:${name}`, fn));
  };
  const send = (content) => model.send(content);

  // The one status line: where it runs and the credits left.
  const status = h("div", { class: "luma-status", "data-luma": "status-line", role: "status" });

  // 1. The parent: a picker of known videos, or a pasted id.
  const picker = h("div", { class: "luma-picker", "data-luma": "picker", role: "list" });
  const parent = h("input", {
    class: "luma-input luma-mono", type: "text", "data-luma": "parent", spellcheck: "false",
    placeholder: "…or paste a task id", "aria-label": "Parent task id",
  });
  const parentError = h("div", { class: "luma-msg", "data-kind": "error", "data-luma": "error-parent_task_id" });
  const parentNote = h("div", { class: "luma-note", "data-luma": "parent-note" });
  const stepOne = h("section", { class: "luma-section" },
    h("div", { class: "luma-step" }, "1 · Pick the video to continue"),
    picker, parent, parentError, parentNote);

  // 2. The prompt.
  const prompt = h("textarea", {
    class: "luma-input luma-prompt", rows: "3", "data-luma": "prompt",
    placeholder: "What happens next? Who, what, where, and how the camera moves.",
    "aria-label": "What happens next",
  });
  const count = h("span", { class: "luma-count", "data-luma": "count" });
  const promptError = h("div", { class: "luma-msg", "data-kind": "error", "data-luma": "error-prompt" });
  const ratio = h("div", { class: "luma-note", "data-luma": "ratio" });
  const stepTwo = h("section", { class: "luma-section" },
    h("div", { class: "luma-step" }, "2 · What happens next?"),
    prompt, h("div", { class: "luma-under" }, promptError, count), ratio);

  // Options: frames, prompt enhancement, webhook.
  const image = h("input", { class: "luma-input", type: "url", placeholder: "https://… (optional)", "data-luma": "image_url" });
  const endImage = h("input", { class: "luma-input", type: "url", placeholder: "https://… (optional)", "data-luma": "end_image_url" });
  const enhance = h("input", { type: "checkbox", "data-luma": "enhance_prompt" });
  const hook = h("input", { class: "luma-input", type: "url", placeholder: "https://… (optional)", "data-luma": "webhook_url" });
  const secret = h("input", { class: "luma-input", type: "password", placeholder: "optional", autocomplete: "off", "data-luma": "webhook_secret" });
  const fields = {
    image_url: field("First frame URL", image, "image_url"),
    end_image_url: field("Last frame URL", endImage, "end_image_url"),
    webhook_url: field("Webhook URL", hook, "webhook_url"),
    webhook_secret: field("Webhook secret", secret, "webhook_secret"),
  };
  const options = h("details", { class: "luma-options", "data-luma": "options" },
    h("summary", {}, "Options: first and last frame, prompt enhancement, webhook"),
    fields.image_url.row, fields.end_image_url.row,
    h("label", { class: "luma-check" }, enhance, " Enhance the prompt (the service rewrites it)"),
    fields.webhook_url.row, fields.webhook_secret.row);

  const share = h("input", { type: "checkbox", "data-luma": "share" });
  const shareRow = h("label", {
    class: "luma-check", title: "Your classmates see the finished video; your teacher can hide it.",
  }, share, " Share in the class gallery");

  // Submit, and why it is disabled.
  const submit = h("button", { class: "luma-button luma-primary luma-submit", type: "button", "data-luma": "submit" }, "Submit extend");
  const reason = h("span", { class: "luma-reason", "data-luma": "submit-reason", role: "status" });
  const hint = h("span", { class: "luma-hint" }, /Mac|iPhone|iPad/.test(navigator.platform || "") ? "⌘+Enter" : "Ctrl+Enter");
  const actions = h("div", { class: "luma-actions" }, submit, reason, hint);

  const messageText = h("span", { "data-luma": "message-text" });
  const useSandbox = h("button", { class: "luma-button", type: "button", "data-luma": "use-sandbox" }, "Use the offline sandbox instead");
  const message = h("div", { class: "luma-msg luma-message", "data-luma": "message", role: "alert" }, messageText, useSandbox);

  const cardsBox = h("div", { class: "luma-cards", "data-luma": "cards" });
  const root = h("div", { class: "luma luma-form", "data-luma": "form" },
    status, stepOne, stepTwo, options, shareRow, actions, message, cardsBox);
  keepKeys(root);
  el.append(root);

  // Edits go to Python as trait updates.
  offs.push(bindText(model, parent, "parent_task_id"));
  offs.push(bindText(model, prompt, "prompt"));
  offs.push(bindText(model, image, "image_url"));
  offs.push(bindText(model, endImage, "end_image_url"));
  offs.push(bindText(model, hook, "webhook_url"));
  enhance.checked = Boolean(model.get("enhance_prompt"));
  enhance.addEventListener("change", () => { model.set("enhance_prompt", enhance.checked); model.save_changes(); });
  on("enhance_prompt", () => { enhance.checked = Boolean(model.get("enhance_prompt")); });
  share.checked = Boolean(model.get("share"));
  share.addEventListener("change", () => { model.set("share", share.checked); model.save_changes(); });
  // The secret never becomes widget state: it goes to Python in a message.
  secret.addEventListener("input", () => send({ type: "secret", value: secret.value }));
  on("secret_epoch", () => { secret.value = ""; });

  const doSubmit = () => {
    // Python decides: it validates (a key pressed right after typing may come before the
    // kernel's verdict on the last keystroke, so Ctrl+Enter is not held back by a stale one).
    if (model.get("busy")) return;
    submit.disabled = true; // one click, one message (Python ignores repeats too)
    send({ type: "submit" });
    // A click Python ignores (within a second of the last submit) changes no state, so no
    // redraw would come: draw again from the state, or the button stays disabled for good.
    setTimeout(drawSubmit, 1500);
  };
  submit.addEventListener("click", doSubmit);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      doSubmit();
    }
  });
  useSandbox.addEventListener("click", () => { useSandbox.disabled = true; send({ type: "use_sandbox" }); });

  const drawStatus = () => {
    const credits = model.get("credits");
    status.textContent = model.get("status_line") || "";
    status.title = model.get("status_title") || "";
    status.dataset.kind = model.get("status_kind") || "";
    status.dataset.credits = credits === null || credits === undefined ? "" : String(credits);
    show(shareRow, Boolean(model.get("in_class")));
  };
  const drawPicker = () => {
    const chosen = model.get("parent_task_id") || "";
    const items = model.get("parents") || [];
    picker.replaceChildren(...items.map((item) => {
      const poster = item.poster
        ? h("img", { class: "luma-poster", src: item.poster, alt: "", loading: "lazy", referrerpolicy: "no-referrer" })
        : posterCard(item);
      const title = h("span", { class: "luma-pick-title" }, item.title);
      const noPicture = () => {
        poster.replaceWith(posterCard(item));
        title.hidden = true; // the card above already says it, whole
      };
      if (item.poster) poster.addEventListener("error", noPicture, { once: true });
      else title.hidden = true;
      return h("button", {
        class: "luma-pick", type: "button", role: "listitem", "data-luma": "picker-item",
        "data-task-id": item.task_id, "aria-pressed": item.task_id === chosen ? "true" : "false",
        title: `${item.prompt || item.title}\n${item.task_id}`,
        onclick: () => send({ type: "pick", task_id: item.task_id }),
      }, poster, title,
      h("span", { class: "luma-pick-source" }, item.ratio ? `${item.source} · ${item.ratio}` : item.source));
    }));
    show(picker, items.length > 0);
  };
  const drawParent = () => {
    parentNote.textContent = model.get("parent_note") || "";
    show(parentNote, Boolean(model.get("parent_note")));
    ratio.textContent = `Aspect ratio: ${model.get("ratio_text") || ""}`;
    drawPicker();
  };
  const drawErrors = () => {
    const errors = model.get("field_errors") || {};
    const pairs = [["parent_task_id", parentError], ["prompt", promptError],
      ...Object.entries(fields).map(([name, f]) => [name, f.error])];
    for (const [name, box] of pairs) {
      box.textContent = errors[name] || "";
      show(box, Boolean(errors[name]));
    }
    if (errors.image_url || errors.end_image_url || errors.webhook_url || errors.webhook_secret) {
      options.open = true;
    }
  };
  const drawPreviews = () => {
    // The images the user named, once Python found their URLs valid.
    const previews = model.get("previews") || {};
    for (const name of ["image_url", "end_image_url"]) {
      const img = fields[name].preview;
      const url = previews[name] || "";
      if (img.getAttribute("src") !== url) {
        if (url) img.src = url;
        else img.removeAttribute("src");
      }
      show(img, Boolean(url));
    }
  };
  const drawCount = () => {
    const length = (model.get("prompt") || "").trim().length;
    const max = model.get("max_prompt");
    count.textContent = `${length} / ${max}`;
    count.dataset.over = length > max ? "true" : "false";
  };
  const drawSubmit = () => {
    const ready = Boolean(model.get("ready"));
    const busy = Boolean(model.get("busy"));
    submit.disabled = !ready || busy;
    submit.textContent = busy ? "Submitting…" : "Submit extend";
    const why = model.get("disabled_reason") || "";
    reason.textContent = submit.disabled ? why : "";
    submit.title = submit.disabled ? why : "Submit (Ctrl/Cmd+Enter)";
  };
  const drawMessage = () => {
    const text = model.get("message") || "";
    messageText.textContent = text;
    message.dataset.kind = model.get("message_kind") || "info";
    show(message, Boolean(text));
    show(useSandbox, Boolean(model.get("offer_sandbox")));
    useSandbox.disabled = false;
  };
  const drawProjector = () => root.classList.toggle("luma-projector", Boolean(model.get("projector")));

  const known = new Map();
  const drawCards = () => {
    renderCards(cardsBox, model.get("cards") || [], send, {
      // "Extend this": the finished video becomes the parent; the prompt is next.
      extend: (taskId) => {
        send({ type: "extend", task_id: taskId });
        root.scrollIntoView({ block: "start", behavior: "smooth" });
        prompt.focus();
      },
    }, known);
  };

  for (const name of ["status_line", "status_title", "status_kind", "credits", "in_class"]) on(name, drawStatus);
  for (const name of ["parents", "parent_note", "ratio_text", "parent_task_id"]) on(name, drawParent);
  on("field_errors", drawErrors);
  on("previews", drawPreviews);
  on("prompt", drawCount);
  for (const name of ["ready", "busy", "disabled_reason"]) on(name, drawSubmit);
  for (const name of ["message", "message_kind", "offer_sandbox"]) on(name, drawMessage);
  on("projector", drawProjector);
  on("cards", drawCards);
  drawStatus(); drawParent(); drawErrors(); drawPreviews(); drawCount(); drawSubmit(); drawMessage(); drawProjector(); drawCards();
  return () => offs.forEach((off) => off());
}

export default {
  render({ model, el }) {
    return model.get("view") === "form" ? renderForm(model, el) : renderProgress(model, el);
  },
};
