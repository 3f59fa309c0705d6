// The page's script: previews and drag and drop for the photos, and the
// calls to the JSON API. Plain JavaScript, no build step, no libraries.
"use strict";

function $(id) { return document.getElementById(id); }

function showError(msg) {
  const el = $("error");
  el.textContent = msg;
  el.hidden = !msg;
}

// postForm sends a form to the API and returns its JSON answer, or throws
// an Error with the API's message.
async function postForm(url, data) {
  let resp;
  try {
    resp = await fetch(url, { method: "POST", body: data, headers: { "Accept": "application/json" } });
  } catch (e) {
    throw new Error("The server cannot be reached (" + e.message + ").");
  }
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    throw new Error((body && body.error) ? body.error : "The server answered " + resp.status + ".");
  }
  return body;
}

// setupDrop makes a photo slot accept a dropped file and show a preview.
function setupDrop(slot, onChange) {
  const input = slot.querySelector("input[type=file]");
  const preview = slot.querySelector(".preview");
  const placeholder = slot.querySelector(".placeholder");
  const label = slot.querySelector("label strong").textContent;
  let url = null;
  function show() {
    const file = input.files[0];
    if (url) { URL.revokeObjectURL(url); url = null; }
    if (!file) {
      preview.hidden = true;
      placeholder.hidden = false;
      slot.classList.remove("filled");
    } else {
      url = URL.createObjectURL(file);
      preview.src = url;
      preview.alt = label + ": " + file.name;
      preview.hidden = false;
      placeholder.hidden = true;
      slot.classList.add("filled");
    }
    onChange();
  }
  input.addEventListener("change", show);
  slot.addEventListener("dragover", (e) => { e.preventDefault(); slot.classList.add("dragover"); });
  slot.addEventListener("dragleave", () => slot.classList.remove("dragover"));
  slot.addEventListener("drop", (e) => {
    e.preventDefault();
    slot.classList.remove("dragover");
    if (e.dataTransfer.files.length > 0) {
      const dt = new DataTransfer();
      dt.items.add(e.dataTransfer.files[0]);
      input.files = dt.files;
      show();
    }
  });
}

function fmt(x) { return x.toFixed(3); }

function initScore() {
  const form = $("score-form");
  const button = $("score-button");
  const a = $("photo-a"), b = $("photo-b");
  let pending = 0;

  async function score() {
    if (!a.files[0] || !b.files[0]) return;
    const mine = ++pending;
    showError("");
    button.disabled = true;
    button.textContent = "Scoring…";
    form.setAttribute("aria-busy", "true");
    try {
      const res = await postForm("/api/score", new FormData(form));
      if (mine !== pending) return; // a newer pair is being scored
      const max = 2 * res.cutoff;
      const fill = $("meter-fill");
      fill.style.width = Math.min(100, 100 * res.distance / max) + "%";
      fill.className = "meter-fill " + (res.compatible ? "good-bar" : "bad-bar");
      $("verdict").textContent = res.verdict;
      $("verdict").className = "verdict " + (res.compatible ? "good" : "bad");
      $("distance").textContent = fmt(res.distance);
      $("distance").dataset.distance = String(res.distance);
      $("cutoff").textContent = fmt(res.cutoff);
      $("scale-max").textContent = fmt(max) + "+";
      $("result").hidden = false;
      $("result").dataset.state = "done";
    } catch (e) {
      if (mine !== pending) return;
      $("result").hidden = true;
      showError(e.message);
    } finally {
      if (mine === pending) {
        button.disabled = false;
        button.textContent = "Score this pair";
        form.removeAttribute("aria-busy");
      }
    }
  }

  for (const slot of document.querySelectorAll("[data-drop]")) setupDrop(slot, score);
  form.addEventListener("submit", (e) => { e.preventDefault(); score(); });
}

// card fills the card template with a recommendation.
function card(it, k) {
  const li = $("card-template").content.firstElementChild.cloneNode(true);
  const a = li.querySelector("a");
  const params = new URLSearchParams({ id: it.id });
  if (k) params.set("k", k);
  a.href = "/recommend?" + params;
  const img = li.querySelector("img");
  if (it.thumbnail_url) {
    img.src = it.thumbnail_url;
    img.alt = it.name;
  } else {
    img.remove();
  }
  li.querySelector(".name").textContent = it.name;
  li.querySelector(".cat").textContent = it.category || "";
  li.querySelector(".dist").textContent = "distance " + fmt(it.distance);
  return li;
}

function initRecommend() {
  const form = $("upload-form");
  if (!form) return;
  const button = form.querySelector("button");
  let photoURL = null; // the shown photo's object URL, released when replaced
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("upload").files[0];
    if (!file) return;
    showError("");
    button.disabled = true;
    try {
      const data = new FormData(form);
      const items = await postForm("/api/recommend", data);
      const query = $("query");
      query.replaceChildren();
      if (photoURL) URL.revokeObjectURL(photoURL);
      photoURL = URL.createObjectURL(file);
      const img = document.createElement("img");
      img.src = photoURL;
      img.alt = "Your photo: " + file.name;
      const text = document.createElement("div");
      const h = document.createElement("h2");
      h.id = "results-title";
      h.textContent = "Goes best with your photo";
      const p = document.createElement("p");
      p.className = "cat";
      p.textContent = file.name;
      text.append(h, p);
      query.append(img, text);
      $("matches").replaceChildren(...items.map((it) => card(it, data.get("k"))));
      $("results").hidden = false;
      $("results").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (err) {
      showError(err.message);
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "score") initScore();
  if (document.body.dataset.page === "recommend") initRecommend();
});
