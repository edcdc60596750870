// The template editor: pick an event, a locale and a channel; edit; see the preview live; save a version.
(function () {
  "use strict";
  const root = document.getElementById("template-editor");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const state = { retailer: null, event: null, doc: null, timer: null, seq: 0 };

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    return node;
  }

  async function call(method, path, body) {
    const response = await fetch("/console/templates/api/" + path, {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  function key() {
    return [state.retailer, state.event, $("tpl-locale").value, $("tpl-channel").value]
      .map(encodeURIComponent).join("/");
  }

  function showProblems(errors, warnings) {
    const list = $("tpl-errors");
    list.replaceChildren(...(errors || []).map((e) => el("li", (e.line ? "Line " + e.line + ": " : "") + e.msg)));
    $("tpl-warnings").replaceChildren(...(warnings || []).map((w) => el("li", w)));
    $("tpl-body").setAttribute("aria-invalid", errors && errors.length ? "true" : "false");
    $("tpl-save").disabled = Boolean(errors && errors.length);
  }

  function showPreview(report) {
    $("tpl-preview-text").textContent = report.text || "";
    $("tpl-preview-options").replaceChildren(...(report.options || []).map((o) => el("li", o.label)));
    const sms = report.sms;
    $("tpl-segments").textContent = sms
      ? sms.segments + " SMS segment" + (sms.segments > 1 ? "s" : "") + " · " + sms.encoding + " · " + sms.characters + " characters with the numbered replies"
      : report.characters + " characters";
    showProblems(report.errors, report.warnings);
  }

  async function preview() {
    const seq = ++state.seq;
    const body = { body: $("tpl-body").value, content_sid: $("tpl-sid").value.trim() || null };
    const result = await call("POST", key() + "/preview", body);
    if (seq !== state.seq) return; // a newer keystroke already asked
    if (result.ok) showPreview(result.data);
    else showProblems([{ line: null, msg: "Preview failed (" + result.status + ")" }], []);
  }

  function schedulePreview() {
    clearTimeout(state.timer);
    state.timer = setTimeout(preview, 250);
  }

  function showDoc(doc) {
    $("tpl-description").textContent = doc.description;
    $("tpl-variables").replaceChildren(...Object.entries(doc.variables).flatMap(([name, text]) => [el("dt", name), el("dd", text)]));
  }

  async function loadVersions() {
    const result = await call("GET", key() + "/versions");
    const list = $("tpl-versions");
    list.replaceChildren();
    if (!result.ok) return;
    result.data.versions.forEach((v) => {
      const item = el("li", "v" + v.version + (v.active ? " (active)" : "") + " · " + new Date(v.created_at).toLocaleString() + " · " + (v.created_by || ""));
      if (!v.active) {
        const button = el("button", "Roll back", { type: "button", class: "link", "data-version": v.version });
        button.addEventListener("click", () => rollback(v.version));
        item.append(" ", button);
      }
      list.append(item);
    });
  }

  async function load() {
    if (!state.retailer || !state.event) return;
    $("tpl-sid-row").hidden = $("tpl-channel").value !== "whatsapp";
    const result = await call("GET", key());
    if (!result.ok) { $("tpl-status").textContent = "Could not load (" + result.status + ")"; return; }
    const t = result.data;
    $("tpl-body").value = t.body;
    $("tpl-sid").value = t.content_sid || "";
    $("tpl-source").textContent = t.source === "default" ? "Doorstep default" : "your version " + t.version;
    showDoc(t.doc);
    $("tpl-status").textContent = "";
    await Promise.all([preview(), loadVersions()]);
  }

  async function save() {
    $("tpl-status").textContent = "Saving…";
    const result = await call("PUT", key(), { body: $("tpl-body").value, content_sid: $("tpl-sid").value.trim() || null });
    if (result.ok) {
      $("tpl-status").textContent = "Saved as version " + result.data.version;
      $("tpl-source").textContent = "your version " + result.data.version;
      await loadVersions();
    } else {
      const detail = (result.data && result.data.detail) || {};
      showProblems(detail.errors || [{ line: null, msg: typeof detail === "string" ? detail : "Refused (" + result.status + ")" }], detail.warnings || []);
      $("tpl-status").textContent = "Not saved";
    }
  }

  async function rollback(version) {
    const result = await call("POST", key() + "/rollback", { version });
    $("tpl-status").textContent = result.ok ? (version ? "Rolled back to version " + version : "Back to the default") : "Rollback failed (" + result.status + ")";
    if (result.ok) await load();
  }

  // The sandbox keeps its session id in its own tab's sessionStorage (channels/sandbox_page): a
  // window this page opened is same-origin, so the id can be read from it.
  const SANDBOX_SESSION_KEY = "doorstep.sandbox.session";
  let sandboxWindow = null;

  function sandboxSession() {
    try {
      return sandboxWindow && !sandboxWindow.closed ? sandboxWindow.sessionStorage.getItem(SANDBOX_SESSION_KEY) || "" : "";
    } catch (e) {
      return "";
    }
  }

  async function sendTest() {
    if (!$("tpl-session").value.trim()) $("tpl-session").value = sandboxSession();
    const session = $("tpl-session").value.trim();
    if (!session) { $("tpl-test-status").textContent = "Paste a sandbox session id first."; return; }
    const result = await call("POST", key() + "/test", { session_id: session, body: $("tpl-body").value });
    $("tpl-test-status").textContent = result.ok ? "Sent to the sandbox." : "Not sent: " + JSON.stringify((result.data || {}).detail || result.status);
  }

  async function loadFilters() {
    const result = await call("GET", encodeURIComponent(state.retailer));
    if (!result.ok) return;
    $("tpl-filters").replaceChildren(...Object.entries(result.data.filters).flatMap(([name, text]) => [el("dt", "|" + name), el("dd", text)]));
    const custom = new Set(result.data.templates.filter((t) => t.source !== "default").map((t) => t.event));
    document.querySelectorAll("#tpl-event-list button").forEach((b) => {
      b.querySelector(".dot")?.remove();
      if (custom.has(b.dataset.event)) b.append(el("span", "edited", { class: "dot" }));
    });
  }

  function selectEvent(name) {
    state.event = name;
    document.querySelectorAll("#tpl-event-list button").forEach((b) => b.setAttribute("aria-current", String(b.dataset.event === name)));
    load();
  }

  $("tpl-retailer").addEventListener("change", (e) => { state.retailer = e.target.value; loadFilters(); load(); });
  document.querySelectorAll("#tpl-event-list button").forEach((b) => b.addEventListener("click", () => selectEvent(b.dataset.event)));
  $("tpl-locale").addEventListener("change", load);
  $("tpl-channel").addEventListener("change", load);
  $("tpl-body").addEventListener("input", schedulePreview);
  $("tpl-sid").addEventListener("input", schedulePreview);
  $("tpl-save").addEventListener("click", save);
  $("tpl-reset").addEventListener("click", () => rollback(0));
  $("tpl-test").addEventListener("click", sendTest);
  $("tpl-open-sandbox").addEventListener("click", () => { sandboxWindow = window.open("/sandbox", "doorstep-sandbox"); });

  state.retailer = $("tpl-retailer").value || null;
  const first = document.querySelector("#tpl-event-list button");
  if (state.retailer && first) { loadFilters(); selectEvent(first.dataset.event); }
})();
