// Small progressive enhancements. htmx does the rest; nothing here is needed for the pages to work.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button || !navigator.clipboard) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

// Times are shown in the browser's time zone: tell the server which one it is.
(() => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  const cookie = `tz=${encodeURIComponent(zone)}`;
  if (document.cookie.split("; ").includes(cookie)) return;
  const secure = location.protocol === "https:" ? "; secure" : "";
  document.cookie = `${cookie}; path=/; max-age=31536000; samesite=lax${secure}`;
})();

// -- Keeping the person's place across htmx swaps ------------------------------------------------
// Before a request, remember what had focus and which region it replaces; after the swap, focus
// what the person needs next: a message or an invalid field in the new content, else the control
// they used (found again by its id), else the region itself. A request that left the focused
// control in place (typing in a search box, a background refresh) changes nothing.
const pending = new Map();

const PERSON_EVENTS = new Set(["click", "submit", "change", "input", "keyup", "keydown", "search"]);

document.addEventListener("htmx:beforeRequest", (event) => {
  const target = event.detail.target;
  const trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
  // Regions refreshing themselves after someone else's change never move focus.
  if (!target || !target.id || !trigger || !PERSON_EVENTS.has(trigger.type)) return;
  const active = document.activeElement;
  pending.set(target.id, {
    control: active,
    controlId: active && active !== document.body ? active.id : "",
    submitted: event.detail.requestConfig && event.detail.requestConfig.triggeringEvent
      && event.detail.requestConfig.triggeringEvent.type === "submit",
  });
});

function focusFirst(element) {
  if (!element) return false;
  if (!element.matches("a[href], button, input, select, textarea, [tabindex]")) element.setAttribute("tabindex", "-1");
  element.focus({ preventScroll: false });
  return true;
}

document.addEventListener("htmx:afterSettle", (event) => {
  // Dispatched on the content that settled: only that region's remembered focus applies.
  const region = event.target;
  // Only the dialog's own swap opens it (before focus is placed inside it): a table refreshing
  // after a removal never does.
  if (region && region.id === "member-dialog") openMemberDialog(region);
  const remembered = region && region.id ? pending.get(region.id) : null;
  if (remembered) {
    pending.delete(region.id);
    placeFocus(region, remembered);
    announceCount(region);  // what the person's search or filter found; never a background refresh
  } else if (region && region.hasAttribute && region.hasAttribute("data-announce-progress")) {
    announceCount(region);  // a job's progress: read out when its count changes
  }
  showSelectAll();
});

function placeFocus(region, remembered) {
  const { control, controlId, submitted } = remembered;
  if (control && control.isConnected && control !== document.body && !submitted) return;
  if (focusFirst(region.querySelector("[aria-invalid='true'], [data-autofocus]"))) return;
  if (controlId && focusFirst(document.getElementById(controlId))) return;
  if (submitted && control && control.isConnected) return;
  focusFirst(region);
}

// A page loaded after a form was sent (a redirect with a message, or the form again with its
// errors): focus what the person needs to read or fix, as after an htmx swap. Again once the page
// has loaded: going to the address's #fragment takes focus away, and the person has not moved
// it yet if it is still on the body.
function focusWhatToRead() {
  if (document.activeElement && document.activeElement !== document.body) return;
  focusFirst(document.querySelector("#banner [data-autofocus], main [aria-invalid='true'], main [data-autofocus]"));
}
document.addEventListener("DOMContentLoaded", focusWhatToRead);
window.addEventListener("load", () => setTimeout(focusWhatToRead, 0));

// -- The remove dialog: modal, focus inside, Escape closes it, focus returns to where it was --------
// The opener is remembered by id too: a table refreshed meanwhile holds a new copy of it.
let dialogOpener = null;
let dialogOpenerId = "";

function openMemberDialog(dialog) {
  if (dialog.open || !dialog.querySelector("h2")) return;
  dialog.showModal();
}

document.addEventListener("htmx:beforeRequest", (event) => {
  const dialog = document.getElementById("member-dialog");
  if (event.detail.target && event.detail.target.id === "member-dialog" && dialog && !dialog.open) {
    dialogOpener = document.activeElement;
    dialogOpenerId = dialogOpener && dialogOpener !== document.body ? dialogOpener.id : "";
  }
});

document.addEventListener("close", (event) => {
  if (event.target.id !== "member-dialog" || event.target.dataset.done) return;
  const opener = dialogOpener && dialogOpener.isConnected ? dialogOpener : document.getElementById(dialogOpenerId);
  focusFirst(opener || document.getElementById("users-panel") || document.getElementById("main"));
}, true);

// The change went through: the dialog closes and empties (it cannot come back with the spent
// form), and focus goes to the result message in the banner.
document.body.addEventListener("member-dialog-done", () => {
  const dialog = document.getElementById("member-dialog");
  if (dialog) {
    dialog.dataset.done = "true";
    if (dialog.open) dialog.close();
    dialog.replaceChildren();
  }
  dialogOpener = null;
  focusFirst(document.querySelector("#banner [data-autofocus]"));
});

// -- Counts are announced; the tables around them are not live regions --------------------------
function announceCount(region) {
  const status = document.getElementById("live-status");
  const count = region && region.querySelector ? region.querySelector("[data-live-count]") : null;
  if (!status || !count) return;
  const text = count.textContent.replace(/\s+/g, " ").trim();
  if (status.textContent !== text) status.textContent = text;
}

// -- Selecting members: select all on a page, and a button that says how many are selected -------
function showSelectAll() {
  for (const box of document.querySelectorAll("[data-select-all][hidden]")) box.hidden = false;
  updateSelectedCount();
}

function updateSelectedCount() {
  const count = document.querySelectorAll("input[form='remove-selected'][name='person']:checked").length;
  for (const button of document.querySelectorAll("[data-remove-selected]")) {
    button.textContent = count ? `Remove ${count} selected…` : "Remove selected…";
  }
}

document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-select-all]");
  if (all) {
    for (const box of all.closest("table").querySelectorAll("tbody input[type='checkbox']")) {
      box.checked = all.checked;
    }
  }
  if (all || event.target.matches("input[form='remove-selected']")) updateSelectedCount();
});

document.addEventListener("DOMContentLoaded", showSelectAll);

// -- The resource picker: only the chosen type's resources, filtered as you type ---------------
function filterResourcePicker() {
  const picker = document.querySelector("[data-resource-picker]");
  if (!picker) return;
  const type = document.getElementById("id_resource_type");
  const needle = (picker.querySelector("[data-resource-search]").value || "").trim().toLowerCase();
  for (const group of picker.querySelectorAll("[data-resource-type]")) {
    group.hidden = Boolean(type && type.value) && group.dataset.resourceType !== type.value;
    for (const item of group.querySelectorAll("li")) {
      item.hidden = Boolean(needle) && !item.dataset.name.includes(needle) && !item.textContent.toLowerCase().includes(needle);
    }
  }
}

document.addEventListener("input", (event) => {
  if (event.target.matches("[data-resource-search]")) filterResourcePicker();
});
document.addEventListener("change", (event) => {
  if (event.target.id === "id_resource_type") filterResourcePicker();
});
document.addEventListener("DOMContentLoaded", filterResourcePicker);

// -- A group's page painted from the mirror reads itself live once loaded (#live-read) ----------
// Whatever the person does first wins: their own request, or typing in a field, drops that read
// (it would replace the page under them); the "Show it live" link stays.
function dropLiveRead() {
  const liveRead = document.getElementById("live-read");
  if (!liveRead || !liveRead.hasAttribute("data-live-pending")) return;
  liveRead.removeAttribute("data-live-pending");
  // htmx listens on the body, and reads the element from the detail.
  liveRead.dispatchEvent(new CustomEvent("htmx:abort", { bubbles: true, detail: { elt: liveRead } }));
  for (const note of liveRead.querySelectorAll("[data-live-reading]")) note.hidden = true;
}

// Only what the person does drops it: a panel loading itself or a region refreshing after a
// change is not the person acting.
document.addEventListener("htmx:beforeRequest", (event) => {
  const elt = event.detail.elt;
  if (!elt) return;
  if (elt.id === "live-read") {
    if (!elt.hasAttribute("data-live-pending")) event.preventDefault();  // dropped before it began
    return;
  }
  const config = event.detail.requestConfig || {};
  const trigger = config.triggeringEvent;
  if (trigger && PERSON_EVENTS.has(trigger.type)) dropLiveRead();
});
document.addEventListener("input", dropLiveRead);
document.addEventListener("change", dropLiveRead);
// Reaching for a control (a tick box, a button, a field) is acting too: a swap would take it
// away from under the pointer or the keyboard focus.
document.addEventListener("pointerdown", dropLiveRead);
document.addEventListener("focusin", (event) => {
  if (event.target.closest && event.target.closest("#main input, #main select, #main textarea, #main button")) {
    dropLiveRead();
  }
});
// A live read already answered but not yet swapped in is dropped too: never under the person.
document.addEventListener("htmx:beforeSwap", (event) => {
  const elt = event.detail.elt || (event.detail.requestConfig || {}).elt;
  if (elt && elt.id === "live-read" && !elt.hasAttribute("data-live-pending")) event.detail.shouldSwap = false;
});
document.addEventListener("DOMContentLoaded", () => {
  for (const note of document.querySelectorAll("#live-read[data-live-pending] [data-live-reading]")) note.hidden = false;
});
