// Doorstep sandbox: talks to /sandbox/api, builds the page with DOM calls (never innerHTML with data).
"use strict";

(function () {
  const API = "/sandbox/api";
  const SESSION_KEY = "doorstep.sandbox.session";
  const SUGGESTIONS = {
    en: ["Where is my parcel?", "Can I reschedule?", "Send it to a pickup point", "Book white-glove setup",
      "Leave it with the concierge", "Talk to a person"],
    fr: ["Où est mon colis ?", "Je voudrais changer l'heure de livraison", "Livrer à un point de retrait",
      "Réserver l'installation à domicile", "Laissez-le au concierge", "Parler à une personne"],
    es: ["¿Dónde está mi paquete?", "Quiero cambiar la entrega", "Enviarlo a un punto de recogida",
      "Reservar instalación en casa", "Déjelo con el conserje", "Hablar con una persona"],
  };
  const CHANNEL_NAMES = { sms: "SMS", whatsapp: "WhatsApp", telegram: "Telegram" };

  const $ = (id) => document.getElementById(id);
  const els = {
    search: $("search"), recipients: $("recipients"), who: $("who"), log: $("log"), status: $("status"),
    suggestions: $("suggestions"), composer: $("composer"), text: $("text"), send: $("send"),
    change: $("change"), notifications: $("notifications"),
  };
  let session = null; // {session_id, recipient}
  let lastMessageId = 0; // the newest stored message of the conversation this page has seen
  let busy = false;
  let pollTimer = null;
  let searchTimer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path, options) {
    const response = await fetch(API + path, {
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      ...options,
    });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const detail = body && body.detail;
      const message = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail;
      const error = new Error(message || `The server answered ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function showStatus(message) {
    els.status.textContent = message || "";
    els.status.hidden = !message;
  }

  function language(locale) {
    return (locale || "en").split(/[_-]/)[0].toLowerCase();
  }

  // --- recipients -------------------------------------------------------------------------------

  async function loadRecipients() {
    const q = els.search.value.trim();
    try {
      const data = await api(`/recipients?limit=100&q=${encodeURIComponent(q)}`);
      renderRecipients(data.recipients);
    } catch (error) {
      els.recipients.replaceChildren(el("li", { class: "empty", text: error.message }));
    }
  }

  function renderRecipients(recipients) {
    if (!recipients.length) {
      els.recipients.replaceChildren(el("li", { class: "empty", text: "No recipient matches. Run `python app.py demo` to load the demo day." }));
      return;
    }
    els.recipients.replaceChildren(...recipients.map((r) => el("li", {},
      el("button", {
        type: "button", class: "recipient", "data-id": r.id,
        "aria-pressed": session && session.recipient.id === r.id ? "true" : "false",
        onclick: () => openSession(r.id),
      },
      el("span", { class: "name", text: r.name || `Recipient ${r.id}` }),
      el("span", { class: "meta", text: `${r.locale} · ${r.retailer.name}` }),
      el("span", { class: "meta", text: r.tracking + (r.deliveries > 1 ? ` (+${r.deliveries - 1})` : "") })),
    )));
  }

  // --- session ----------------------------------------------------------------------------------

  async function openSession(recipientId) {
    showStatus("");
    try {
      const data = await api("/sessions", { method: "POST", body: JSON.stringify({ recipient_id: recipientId }) });
      startSession(data, []);
      els.text.focus();
    } catch (error) {
      showStatus(error.message);
    }
  }

  async function restoreSession() {
    const saved = sessionStorage.getItem(SESSION_KEY);
    if (!saved) return;
    try {
      const data = await api(`/sessions/${encodeURIComponent(saved)}`);
      startSession(data, data.messages);
    } catch (_) {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }

  function startSession(data, transcript) {
    session = { session_id: data.session_id, recipient: data.recipient };
    sessionStorage.setItem(SESSION_KEY, data.session_id);
    document.body.classList.add("chatting");
    els.change.hidden = false;
    renderWho(data.recipient);
    els.log.replaceChildren();
    lastMessageId = 0;
    for (const m of transcript) {
      if (m.direction === "inbound") addMine(m.text || labelFor(m.payload));
      else addReply({ text: m.text, options: m.options || [], files: m.files }, m.author, false);
      lastMessageId = Math.max(lastMessageId, m.id || 0);
    }
    disableStaleOptions();
    renderSuggestions(data.recipient.locale);
    els.text.disabled = false;
    els.send.disabled = false;
    for (const button of els.recipients.querySelectorAll(".recipient")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.id) === data.recipient.id));
    }
    loadNotifications();
    clearInterval(pollTimer);
    pollTimer = setInterval(() => {
      if (document.hidden) return;
      loadNotifications();
      if (!busy) loadNewMessages();
    }, 4000);
  }

  function labelFor(payload) {
    return payload ? `[${payload}]` : "";
  }

  function renderWho(recipient) {
    const lines = recipient.deliveries.slice(0, 3).map((d) => el("p", { class: "delivery", "data-tracking": d.tracking },
      `${d.tracking} · ${d.status.replaceAll("_", " ")} · ${formatWindow(d)}`,
      d.white_glove ? " · white-glove" : "",
      d.address ? ` · ${d.address}` : ""));
    els.who.replaceChildren(
      el("p", { class: "name", text: `Chatting as ${recipient.name}` }),
      el("p", { class: "meta", text: `${recipient.locale} · ${recipient.retailer.name}` }),
      ...lines,
    );
  }

  function formatWindow(delivery) {
    if (!delivery.window_start || !delivery.window_end) return delivery.day;
    const options = { timeZone: delivery.timezone, hour: "2-digit", minute: "2-digit" };
    const start = new Date(delivery.window_start);
    const end = new Date(delivery.window_end);
    const day = start.toLocaleDateString(undefined, { timeZone: delivery.timezone, weekday: "short", month: "short", day: "numeric" });
    return `${day} ${start.toLocaleTimeString(undefined, options)}–${end.toLocaleTimeString(undefined, options)}`;
  }

  function renderSuggestions(locale) {
    const items = SUGGESTIONS[language(locale)] || SUGGESTIONS.en;
    els.suggestions.replaceChildren(
      el("span", { class: "sr-only", text: "Things to try:" }),
      ...items.map((text) => el("button", { type: "button", class: "suggestion", onclick: () => say({ text }) }, text)),
    );
  }

  // --- chatting ---------------------------------------------------------------------------------

  function addMine(text) {
    els.log.append(el("li", { class: "msg me" }, el("div", { class: "bubble", text })));
    scrollLog();
  }

  function addReply(reply, author, withOptions) {
    const item = el("li", { class: `msg ${author === "agent" ? "agent" : "bot"}` },
      el("p", { class: "who-said", text: author === "agent" ? "Agent" : "Doorstep" }),
      reply.text ? el("div", { class: "bubble", text: reply.text }) : null);
    for (const file of reply.files || []) {
      item.append(file.content_type.startsWith("image/")
        ? el("a", { href: file.url, target: "_blank", rel: "noopener", class: "sent-file" },
          el("img", { src: file.url, alt: "Picture from the agent" }))
        : el("a", { href: file.url, class: "sent-file", download: "" }, "File from the agent (PDF)"));
    }
    if (reply.options && reply.options.length) {
      item.append(el("div", { class: "options", role: "group", "aria-label": "Options" },
        reply.options.map((o) => el("button", {
          type: "button", class: "option", disabled: !withOptions,
          onclick: () => say({ text: o.label, payload: o.payload }),
        }, o.label))));
    }
    if (reply.renderings) item.append(channelPreviews(reply.renderings));
    els.log.append(item);
    scrollLog();
  }

  function scrollLog() {
    els.log.scrollTop = els.log.scrollHeight;
  }

  function disableStaleOptions() {
    const groups = els.log.querySelectorAll(".options");
    groups.forEach((group, i) => {
      const latest = i === groups.length - 1 && group.closest(".msg") === els.log.lastElementChild;
      for (const button of group.querySelectorAll("button")) button.disabled = !latest;
    });
  }

  // While a message is on its way, the buttons that would send another wait for the answer.
  function setBusy(value) {
    busy = value;
    els.send.disabled = value;
    els.log.setAttribute("aria-busy", String(value));
    for (const button of els.suggestions.querySelectorAll("button")) button.disabled = value;
  }

  async function say({ text, payload }) {
    if (!session || busy) return;
    const shown = text || labelFor(payload);
    if (!shown.trim()) return;
    setBusy(true);
    showStatus("");
    addMine(shown);
    disableStaleOptions();
    const clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2, 10));
    const body = payload ? { text: text || "", payload, client_id: clientId } : { text, client_id: clientId };
    try {
      const data = await api(`/sessions/${encodeURIComponent(session.session_id)}/messages`, {
        method: "POST", body: JSON.stringify(body),
      });
      if (!data.replies.length) {
        els.log.append(el("li", { class: "msg bot" }, el("p", { class: "who-said", text: "No reply: an agent owns this conversation now, or it was a duplicate." })));
      }
      data.replies.forEach((reply) => addReply(reply, "bot", true));
      disableStaleOptions();
      await loadNewMessages();
      loadNotifications();
    } catch (error) {
      if (error.status === 404) {
        sessionStorage.removeItem(SESSION_KEY);
      }
      showStatus(error.message);
    } finally {
      setBusy(false);
    }
  }

  // --- how each channel renders a reply --------------------------------------------------------

  function channelPreviews(renderings) {
    return el("details", { class: "channels", ontoggle: (event) => { if (event.target.open) event.target.scrollIntoView({ block: "nearest" }); } },
      el("summary", {}, "How this reply looks on SMS, WhatsApp and Telegram"),
      el("div", { class: "previews" },
        smsPreview(renderings.sms), whatsappPreview(renderings.whatsapp), telegramPreview(renderings.telegram)));
  }

  function card(kind, ...children) {
    return el("div", { class: `preview ${kind}` }, el("h3", { text: CHANNEL_NAMES[kind] }), ...children);
  }

  function smsPreview(r) {
    if (!r || r.error) return card("sms", el("p", { class: "facts fact-warn", text: (r && r.error) || "not available" }));
    const many = r.segments > 1 || r.encoding !== "GSM-7";
    return card("sms", el("div", { class: "body", text: r.body }),
      el("p", { class: `facts${many ? " fact-warn" : ""}` },
        `${r.encoding} · ${r.segments} segment${r.segments === 1 ? "" : "s"} · ${r.body.length} characters`));
  }

  function whatsappPreview(r) {
    if (!r || r.kind === "refused") return card("whatsapp", el("p", { class: "facts fact-warn", text: (r && r.error) || "not available" }));
    const children = [];
    if (r.body) children.push(el("div", { class: "body", text: r.body }));
    if (r.buttons && r.buttons.length) {
      children.push(el("div", { class: "kbd" }, r.buttons.map((b) => el("span", { text: b.label }))));
    }
    const facts = r.kind === "quick_reply" ? `quick replies · ${r.content_sid}`
      : r.kind === "template" ? `approved template ${r.content_sid}`
      : "free text (inside the 24-hour window)";
    children.push(el("p", { class: "facts", text: facts }));
    return card("whatsapp", ...children);
  }

  function telegramPreview(r) {
    if (!r || r.error) return card("telegram", el("p", { class: "facts fact-warn", text: (r && r.error) || "not available" }));
    const body = el("div", { class: "body" }, safeTelegramHtml(r.text));
    const rows = (r.inline_keyboard || []).map((row) => el("div", { class: "kbd-row" }, row.map((b) => el("span", { text: b.text, title: `callback_data: ${b.callback_data}` }))));
    const children = [body];
    if (rows.length) children.push(el("div", { class: "kbd" }, rows));
    if (r.contact_button) children.push(el("div", { class: "kbd" }, el("span", { text: `${r.contact_button} (shares the phone number)` })));
    children.push(el("p", { class: "facts", text: rows.length ? "HTML · inline keyboard" : "HTML" }));
    return card("telegram", ...children);
  }

  // Telegram's HTML as the server escaped it; only <b>, <i> and <code> become elements here.
  function safeTelegramHtml(html) {
    const doc = new DOMParser().parseFromString(`<div>${html}</div>`, "text/html");
    const allowed = new Set(["B", "STRONG", "I", "EM", "CODE"]);
    const copy = (node) => {
      if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
      if (node.nodeType !== Node.ELEMENT_NODE) return document.createTextNode("");
      const children = Array.from(node.childNodes).map(copy);
      if (!allowed.has(node.tagName)) {
        const fragment = document.createDocumentFragment();
        fragment.append(...children);
        return fragment;
      }
      const out = document.createElement(node.tagName.toLowerCase());
      out.append(...children);
      return out;
    };
    return copy(doc.body.firstChild);
  }

  // --- what agents (after a hand-off) and the system wrote meanwhile ----------------------------

  // The bot's replies come with their renderings from the POST; the conversation's stored messages
  // bring what an agent answered in the console or a template test sent, which no POST returns.
  async function loadNewMessages() {
    if (!session) return;
    const sessionId = session.session_id;
    try {
      const data = await api(`/sessions/${encodeURIComponent(sessionId)}?after=${lastMessageId}`);
      if (!session || session.session_id !== sessionId) return;
      let added = false;
      for (const m of data.messages) {
        lastMessageId = Math.max(lastMessageId, m.id || 0);
        if (m.direction === "outbound" && (m.author === "agent" || m.author === "system")) {
          addReply({ text: m.text, options: m.options || [], files: m.files }, m.author, true);
          added = true;
        }
      }
      if (added) disableStaleOptions();
    } catch (_) { /* the next poll tries again */ }
  }

  // --- notifications ----------------------------------------------------------------------------

  async function loadNotifications() {
    if (!session) return;
    try {
      const data = await api(`/sessions/${encodeURIComponent(session.session_id)}/notifications`);
      renderNotifications(data.notifications);
    } catch (_) { /* shown on the next chat action */ }
  }

  function renderNotifications(items) {
    if (!items.length) {
      els.notifications.replaceChildren(el("li", { class: "empty", text: "Nothing sent to this recipient on SMS, WhatsApp or Telegram yet." }));
      return;
    }
    els.notifications.replaceChildren(...items.map((n) => el("li", { class: "note" },
      el("div", { class: "head" },
        el("span", { class: `badge ${n.channel}`, text: CHANNEL_NAMES[n.channel] || n.channel }),
        el("span", { text: `${n.status}${n.segments > 1 ? ` · ${n.segments} segments` : ""} · ${new Date(n.created_at).toLocaleString()}` })),
      el("div", { class: "text", text: n.body || (n.content_sid ? `template ${n.content_sid}` : "") }),
      n.options && n.options.length ? el("div", { class: "kbd" }, n.options.map((o) => el("span", { text: o.label }))) : null,
      n.error ? el("p", { class: "err", text: n.error }) : null)));
  }

  // --- wiring -----------------------------------------------------------------------------------

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.text.value.trim();
    if (!text) return;
    els.text.value = "";
    say({ text });
  });
  els.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadRecipients, 200);
  });
  els.change.addEventListener("click", () => {
    document.body.classList.remove("chatting");
    els.search.focus();
  });

  loadRecipients().then(restoreSession);
})();
