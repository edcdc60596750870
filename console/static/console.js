// Doorstep console: live updates (server-sent events), keyboard shortcuts, small comforts.
// Everything works without this file; it only saves reloads and keystrokes.
"use strict";

(function () {
  const panes = document.getElementById("panes");
  const conversationId = panes ? Number(panes.dataset.conversation || 0) : 0;
  const composer = document.getElementById("composer");
  const textarea = document.getElementById("reply-text");
  const status = document.getElementById("live-status");
  const conversationPane = document.querySelector(".pane.conversation");

  function scrollThreadToEnd() {
    if (conversationPane) conversationPane.scrollTop = conversationPane.scrollHeight;
  }

  async function refresh(id) {
    const target = document.getElementById(id);
    if (!target || !target.dataset.src) return;
    const response = await fetch(target.dataset.src, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) return;
    const html = await response.text();
    target.innerHTML = html;
  }

  // the tab's title counts the conversations waiting for a person, so a hand-off is seen from afar
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  function countWaiting() {
    const waiting = Array.from(document.querySelectorAll("#conv-list li"))
      .filter((li) => li.querySelector(".chip.needs_person, .chip.failed")).length;
    document.title = waiting ? "(" + waiting + ") " + baseTitle : baseTitle;
  }
  countWaiting();

  // --- live updates --------------------------------------------------------------------------
  const pending = new Set();
  let timer = null;
  function schedule(id) {
    pending.add(id);
    if (timer) return;
    timer = setTimeout(async () => {
      const ids = Array.from(pending);
      pending.clear();
      timer = null;
      for (const each of ids) {
        const nearEnd = conversationPane &&
          conversationPane.scrollHeight - conversationPane.scrollTop - conversationPane.clientHeight < 80;
        if (each === "context-wrap" && document.activeElement && document.activeElement.closest("#context-wrap")) {
          continue; // the agent is filling a form there: do not pull it away
        }
        await refresh(each);
        if (each === "thread-wrap" && nearEnd) scrollThreadToEnd();
        if (each === "inbox-list") countWaiting();
      }
    }, 250);
  }

  // a form being submitted navigates by itself: a reload now would cancel it
  let submitting = false;
  document.addEventListener("submit", () => { submitting = true; });

  const OWNERSHIP = new Set(["TakenOver", "HandedBack", "ConversationClosed", "HandoffRequested"]);
  function onNotice(notice) {
    schedule("inbox-list");
    if (!conversationId) return;
    const mine = notice.conversation_id === conversationId;
    const context = document.getElementById("context-wrap");
    const deliveryMatch = context && notice.delivery_id && context.dataset.src.includes("delivery=" + notice.delivery_id);
    if (submitting) return;
    if (mine && OWNERSHIP.has(notice.kind) && !(textarea && textarea.value.trim())) {
      window.location.reload();
      return;
    }
    if (mine) {
      schedule("thread-wrap");
    }
    if (deliveryMatch || (mine && notice.delivery_id)) schedule("context-wrap");
  }

  if (panes && window.EventSource) {
    const source = new EventSource("/console/events");
    const kinds = [
      "MessageReceived", "MessageSent", "AgentReplied", "NoteAdded", "HandoffRequested", "TakenOver",
      "HandedBack", "ConversationClosed", "OutboxMessageFailed", "MessageStatusChanged", "DeliveryRescheduled",
      "RedirectedToPickup", "WhiteGloveBooked", "EtaChanged", "OutForDelivery", "Arrived", "Delivered",
      "AttemptFailed", "DeliveryCancelled", "InstructionsChanged", "WindowAssigned",
    ];
    const handler = (event) => {
      try { onNotice(JSON.parse(event.data)); } catch (e) { /* a malformed notice is ignored */ }
    };
    source.onmessage = handler;
    for (const kind of kinds) source.addEventListener(kind, handler);
    source.onopen = () => { if (status) { status.className = "live-status on"; status.title = "Live updates on"; } };
    source.onerror = () => { if (status) { status.className = "live-status off"; status.title = "Reconnecting…"; } };
  }

  // Delivery receipts (queued, sent, delivered) arrive from the provider without an event of ours:
  // while a message of this thread still waits for its receipt, re-read the thread now and then.
  const PENDING = ".msg-meta .chip.pending, .msg-meta .chip.sending, .msg-meta .chip.queued, .msg-meta .chip.sent";
  if (conversationId) {
    setInterval(() => {
      if (!document.hidden && document.querySelector("#thread-wrap " + PENDING.split(", ").join(", #thread-wrap "))) {
        schedule("thread-wrap");
      }
    }, 10000);
  }

  // --- composer --------------------------------------------------------------------------------
  const counter = document.getElementById("char-count");
  if (textarea && counter) {
    textarea.addEventListener("input", () => { counter.textContent = String(textarea.value.length); });
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
  }
  // a saved reply goes into the reply box where the cursor is (or after what is written), to edit or send
  const saved = document.getElementById("saved-reply");
  if (saved && textarea) {
    saved.addEventListener("change", () => {
      const text = saved.value;
      if (!text) return;
      const at = textarea.selectionStart ?? textarea.value.length;
      const before = textarea.value.slice(0, at);
      const spacer = before && !/\s$/.test(before) ? " " : "";
      textarea.value = before + spacer + text + textarea.value.slice(textarea.selectionEnd ?? at);
      saved.value = "";
      textarea.focus();
      textarea.dispatchEvent(new Event("input"));
    });
  }
  if (composer) {
    composer.addEventListener("change", () => {
      const note = composer.querySelector('input[name="mode"][value="note"]');
      composer.classList.toggle("note-mode", Boolean(note && note.checked));
    });
    composer.dispatchEvent(new Event("change"));
  }
  scrollThreadToEnd();

  // filters apply as soon as they change
  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select, input[type=checkbox]").forEach((element) => {
      element.addEventListener("change", () => filters.requestSubmit());
    });
  }

  // --- keyboard shortcuts ------------------------------------------------------------------------
  const help = document.getElementById("help");
  function move(step) {
    const links = Array.from(document.querySelectorAll("#conv-list li a"));
    if (!links.length) return;
    let index = links.findIndex((a) => a.getAttribute("aria-current") === "true");
    index = index < 0 ? (step > 0 ? 0 : links.length - 1) : Math.min(links.length - 1, Math.max(0, index + step));
    window.location.href = links[index].href;
  }
  function chooseMode(mode) {
    if (!composer) return;
    const radio = composer.querySelector('input[name="mode"][value="' + mode + '"]');
    if (radio && !radio.disabled) radio.checked = true;
    composer.dispatchEvent(new Event("change"));
    if (textarea) textarea.focus();
  }
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "Escape") {
      if (help && !help.hidden) help.hidden = true;
      if (typing) event.target.blur();
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const click = (id) => { const el = document.getElementById(id); if (el) el.click(); };
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "r": event.preventDefault(); chooseMode("reply"); break;
      case "n": event.preventDefault(); chooseMode("note"); break;
      case "t": click("take-over"); break;
      case "b": click("hand-back"); break;
      case "/": {
        event.preventDefault();
        const search = document.getElementById("search");
        if (search) search.focus();
        break;
      }
      case "?": if (help) help.hidden = !help.hidden; break;
      default: return;
    }
  });
})();
