// The teacher's dashboard: poll live.json every 2 s and swap in the items that changed.
// Items are keyed (data-key) and signed (data-sig); an unchanged item stays in place, so a
// video keeps playing and a field being typed in is not reset. The markup comes from the
// server, escaped there. Forms post with fetch (the XSRF token rides along) and still work
// as plain forms without this script.
(function () {
  "use strict";
  const main = document.querySelector("main[data-live]");
  if (!main) return;
  const liveUrl = main.dataset.live;
  const xsrf = main.dataset.xsrf;
  const flash = document.getElementById("flash");
  const PERIOD_MS = 2000;
  let timer = null;

  function typing(node) {
    const active = document.activeElement;
    return !!active && node.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function reconcile(container, markup) {
    const template = document.createElement("template");
    template.innerHTML = markup;
    const fresh = Array.from(template.content.children);
    const kept = new Map();
    for (const child of Array.from(container.children)) kept.set(child.dataset.key, child);
    fresh.forEach(function (item, index) {
      let current = container.children[index] || null;
      const old = kept.get(item.dataset.key);
      if (old && old !== current) {
        container.insertBefore(old, current); // order changed: move, do not rebuild
        current = old;
      }
      if (current && current.dataset.key === item.dataset.key) {
        if (current.dataset.sig !== item.dataset.sig && !typing(current)) {
          container.replaceChild(item, current);
        }
      } else {
        container.insertBefore(item, current);
      }
    });
    while (container.children.length > fresh.length) container.lastElementChild.remove();
  }

  function refresh() {
    clearTimeout(timer);
    return fetch(liveUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (answer.status === 403) {
          window.location.reload(); // the session ended: the page sends to the login
          return null;
        }
        return answer.json();
      })
      .then(function (live) {
        if (!live) return;
        for (const [name, markup] of Object.entries(live.html)) {
          const container = document.querySelector('[data-section="' + name + '"]');
          if (container) reconcile(container, markup);
        }
        document.body.dataset.updated = String(live.at);
      })
      .catch(function () { /* the relay restarts: try again at the next tick */ })
      .finally(function () { timer = setTimeout(refresh, PERIOD_MS); });
  }

  // A gallery card holds a poster and a play link; the player is made only when pressed, so
  // the page asks for no video bytes until then. A card that plays is kept by reconcile().
  document.addEventListener("click", function (event) {
    const link = event.target instanceof Element && event.target.closest("a[data-luma='play']");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    const video = document.createElement("video");
    video.controls = true;
    video.autoplay = true;
    video.preload = "auto";
    video.dataset.luma = "video";
    const poster = link.querySelector("img");
    if (poster) video.poster = poster.src;
    video.src = link.href;
    link.replaceWith(video);
  });

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.action.includes("/teacher/act/")) return;
    event.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-Luma-Dashboard": "1", "X-XSRFToken": xsrf },
    })
      .then(function (answer) { return answer.json(); })
      .then(function (outcome) {
        flash.textContent = outcome.message;
        flash.className = outcome.ok ? "ok" : "error";
      })
      .catch(function () { flash.textContent = "The relay did not answer."; })
      .finally(refresh);
  });

  timer = setTimeout(refresh, PERIOD_MS);
})();
