// aigif gallery: search, infinite scroll, detail view, live thumbnail progress. No build step.
"use strict";
const $ = (id) => document.getElementById(id);
const grid = $("grid"), form = $("search");
let nextOffset = 0, loading = false, generation = 0;
const cards = new Map();  // file id -> <img>

function params() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
  return p;
}

function showError(msg) { const e = $("error"); e.textContent = msg || ""; e.hidden = !msg; }

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

function card(item) {
  const div = document.createElement("div");
  div.className = "card"; div.tabIndex = 0; div.dataset.id = item.id;
  const img = document.createElement("img");
  img.loading = "lazy"; img.alt = item.prompt || "";
  if (item.thumb) img.src = `/api/files/${item.id}/thumb.png`;
  else { img.src = `/api/files/${item.id}/placeholder.png`; img.className = "placeholder"; }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = item.prompt || "";
  meta.title = item.prompt || "";
  const sub = document.createElement("div");
  sub.className = "meta sub";
  sub.textContent = `${item.model || "?"} · ${item.width}×${item.height} · seed ${item.seed}`;
  div.append(img, meta, sub);
  div.addEventListener("click", () => openDetail(item.id));
  div.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openDetail(item.id); });
  cards.set(item.id, img);
  return div;
}

async function loadMore() {
  if (loading || nextOffset === null) return;
  loading = true;
  const mine = generation;
  const p = params(); p.set("offset", nextOffset);
  try {
    const page = await getJSON(`/api/files?${p}`);
    if (mine !== generation) return;
    showError("");
    page.items.forEach((it) => grid.append(card(it)));
    nextOffset = page.next_offset;
    $("count").textContent = `${page.total}${page.total_capped ? "+" : ""} file${page.total === 1 ? "" : "s"}`;
  } catch (err) { showError(err.message); nextOffset = null; }
  finally { loading = false; }
  if (nextOffset !== null && $("sentinel").getBoundingClientRect().top < innerHeight) loadMore();
}

function restart() {
  generation += 1; nextOffset = 0; loading = false;
  grid.replaceChildren(); cards.clear();
  loadMore();
}

async function facets() {
  const f = await getJSON("/api/facets");
  const fill = (sel, values) => values.forEach((v) => sel.append(new Option(v, v)));
  fill($("f-model"), f.models); fill($("f-family"), f.families); fill($("f-size"), f.sizes); fill($("f-tool"), f.tools);
}

function row(table, key, value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) return;
  const tr = table.insertRow();
  tr.insertCell().textContent = key;
  tr.insertCell().textContent = typeof value !== "object" ? String(value)
    : Array.isArray(value) ? value.map((v) => (typeof v === "object" ? JSON.stringify(v) : v)).join(", ")
    : Object.entries(value).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n");
}

async function openDetail(id, keepImage) {
  const d = await getJSON(`/api/files/${id}`).catch((e) => { showError(e.message); return null; });
  if (!d) return;
  const dlg = $("detail");
  dlg.dataset.id = id;
  $("detail-title").textContent = d.relative_path;
  const img = $("detail-image");
  if (!keepImage) img.src = d.thumb ? `/api/files/${id}/thumb.png` : `/api/files/${id}/placeholder.png`;
  img.alt = d.prompt || "";
  const r = d.render;
  $("detail-caption").textContent = r ? (r.error ? `render failed: ${r.error}` : `fidelity: ${r.status || "unverified"} (${r.source})`)
                                      : d.thumb ? "rendered earlier; fidelity not recorded" : "not rendered yet";
  const t = $("fields"); t.replaceChildren();
  const syntax = d.syntax || {};
  for (const [k, v] of Object.entries(syntax)) if (k !== "platform" && k !== "fingerprint") row(t, k, v);
  row(t, "model family", d.model_family);
  row(t, "source tool", d.source_tool && `${d.source_tool} ${d.source_version || ""}`);
  row(t, "platform", d.platform);
  row(t, "fingerprint", syntax.fingerprint);
  row(t, "regenerable", d.regenerable ? "yes" : `no: ${d.regenerable_reason || "?"}`);
  row(t, "fidelity", r && (r.status || r.error));
  row(t, "signature", d.signature_status || "none");
  row(t, "provenance", d.provenance || "none");
  row(t, "file", `${d.file_size} bytes, sha256 ${d.content_hash}`);
  $("download").href = `/api/files/${id}/image.png?download=1`;
  $("original").href = `/files/${d.root_index}/${d.relative_path.split("/").map(encodeURIComponent).join("/")}`;
  $("copy-comfyui").hidden = !d.comfyui;
  $("copied").hidden = true;
  if (!dlg.open) dlg.showModal();
}

async function copyFrom(what) {  // "parameters" (A1111 text) or "comfyui" (the API graph, JSON)
  const id = $("detail").dataset.id;
  const r = await fetch(`/api/files/${id}/${what}`);
  if (!r.ok) { showError(`cannot copy: ${(await r.json().catch(() => ({}))).error || r.status}`); return; }
  const text = await r.text();
  try { await navigator.clipboard.writeText(text); }
  catch (_) {  // no clipboard permission (plain http on another host): select the text instead
    const ta = document.createElement("textarea"); ta.value = text; document.body.append(ta); ta.select();
    document.execCommand("copy"); ta.remove();
  }
  $("copied").hidden = false;
}

function regenerate() {
  const id = $("detail").dataset.id;
  $("detail-caption").textContent = "rendering at full size…";
  const img = $("detail-image");
  img.onload = () => { img.onload = null; openDetail(id, true); };
  img.onerror = () => { img.onerror = null; openDetail(id, true); };
  img.src = `/api/files/${id}/image.png`;
}

function listen() {
  if (!window.EventSource) return;
  const es = new EventSource("/api/events");
  const bar = $("progress");
  const show = (m) => {
    const total = m.queued + m.done + m.failed;
    bar.hidden = m.queued === 0; bar.max = Math.max(total, 1); bar.value = m.done + m.failed;
    $("progress-text").textContent = m.queued ? `rendering thumbnails: ${m.queued} left` : "";
  };
  es.addEventListener("progress", (ev) => show(JSON.parse(ev.data)));
  es.addEventListener("thumb", (ev) => {
    const m = JSON.parse(ev.data); show(m);
    if (!m.ok) return;
    for (const id of m.ids) {
      const img = cards.get(id);
      if (img) { img.src = `/api/files/${id}/thumb.png`; img.className = ""; }
    }
  });
}

form.addEventListener("submit", (ev) => { ev.preventDefault(); restart(); });
form.addEventListener("change", (ev) => { if (ev.target.id !== "q") restart(); });
$("close").addEventListener("click", () => $("detail").close());
$("copy").addEventListener("click", () => copyFrom("parameters"));
$("copy-comfyui").addEventListener("click", () => copyFrom("comfyui"));
$("regenerate").addEventListener("click", regenerate);
new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) loadMore(); }).observe($("sentinel"));
facets().catch((e) => showError(e.message));
listen();
restart();
