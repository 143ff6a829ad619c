// ExplainRec support desk. Everything on this page comes from the gRPC service through the desk's
// /api routes. Catalog and user text is data: it is only ever set with textContent.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const state = { user: "", history: new Map(), recs: new Map(), order: [], requestId: "", controller: null,
                  t0: 0, timings: {} };
  window.deskTimings = state.timings;

  // -- auth: the agent's token goes to the service as a bearer token ---------------------------------
  const tokenInput = $("#token");
  tokenInput.value = sessionStorage.getItem("explainrec-token") || "";
  tokenInput.addEventListener("change", () => sessionStorage.setItem("explainrec-token", tokenInput.value.trim()));
  const headers = (extra = {}) => {
    const t = tokenInput.value.trim();
    return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
  };

  const status = (text, isError = false) => {
    const el = $("#status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  };
  // why the deterministic template answered, in an agent's words
  const FALLBACK = { disabled: "LLM switched off", deadline: "LLM too slow for this request",
                     llm_unavailable: "LLM unavailable", verifier: "the LLM's text failed the fact check" };
  const money = (p) => (p === null || p === undefined ? "no price" : `$${Number(p).toFixed(2)}`);
  // a short category for the list (the full path is the tooltip): the last levels of a "A > B > C"
  // path, or the last words of an unseparated one ("Industrial & Scientific ... 3D Printing Filament")
  const shortCategory = (c) => {
    c = (c || "").trim();
    if (c.includes(" > ")) return c.split(" > ").slice(-2).join(" › ");
    if (c.includes("; ")) return c;
    const words = c.replace(/^Industrial & Scientific\s*/, "").split(/\s+/);
    return words.length > 4 ? `… ${words.slice(-3).join(" ")}` : words.join(" ");
  };

  async function apiError(resp) {
    let body = {};
    try { body = await resp.json(); } catch (e) { /* not JSON */ }
    if (resp.status === 401) { $("#auth").open = true; }
    return `${body.message || resp.statusText} (${body.error || resp.status})`;
  }

  // -- history -------------------------------------------------------------------------------------
  function attrSpans(parent, item) {
    const brand = document.createElement("span");
    brand.className = "attr attr-brand";
    brand.textContent = item.brand || "no brand";
    const cat = document.createElement("span");
    cat.className = "attr attr-category";
    cat.textContent = shortCategory(item.category) || "no category";
    cat.title = item.category;
    const price = document.createElement("span");
    price.className = item.price === null || item.price === undefined ? "price none" : "price";
    price.textContent = money(item.price);
    parent.append(brand, cat, price);
  }

  function renderHistory(data) {
    const list = $("#history-list");
    list.replaceChildren();
    state.history.clear();
    for (const e of data.entries) {
      const li = document.createElement("li");
      li.dataset.itemId = e.item.id;
      const title = document.createElement("span");
      title.className = "h-title";
      title.textContent = e.item.title;
      const meta = document.createElement("div");
      meta.className = "meta";
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = e.kind;
      const when = document.createElement("time");
      const d = new Date(e.ts * 1000);
      when.dateTime = d.toISOString();
      when.textContent = e.ts > 1e8 ? d.toISOString().slice(0, 10) : `step ${e.ts}`;
      attrSpans(meta, e.item);
      const id = document.createElement("code");
      id.className = "item-id";
      id.textContent = e.item.id;
      meta.append(kind, when, id);
      li.append(title, meta);
      list.append(li);
      if (!state.history.has(e.item.id)) state.history.set(e.item.id, li);
    }
    $("#history-summary").textContent = data.entries.length
      ? `${data.entries.length} of ${data.total} events shown.` : "No history.";
  }

  async function loadHistory(user) {
    const resp = await fetch(`/api/history?user_id=${encodeURIComponent(user)}&limit=50`, { headers: headers() });
    if (!resp.ok) throw new Error(await apiError(resp));
    renderHistory(await resp.json());
  }

  // -- highlighting the cited history item ---------------------------------------------------------
  function cited(rec) {
    const j = rec.justification;
    const id = (j && j.evidence_ids && j.evidence_ids[0]) || (rec.data.evidence[0] && rec.data.evidence[0].item_id);
    const ev = rec.data.evidence.find((e) => e.item_id === id);
    return { id, shared: ev ? ev.shared : [] };
  }

  function clearHighlight() {
    document.querySelectorAll(".cited").forEach((el) => { el.classList.remove("cited"); el.removeAttribute("aria-current"); });
    document.querySelectorAll(".attr.shared").forEach((el) => el.classList.remove("shared"));
  }

  function highlight(itemId) {
    clearHighlight();
    const rec = state.recs.get(itemId);
    if (!rec) return;
    const { id, shared } = cited(rec);
    const li = id && state.history.get(id);
    if (!li) return;
    li.classList.add("cited");
    li.setAttribute("aria-current", "true");
    // scroll the history panel only: moving the page would slide the hovered text away from the pointer
    const panel = $("#history-list");
    const pr = panel.getBoundingClientRect(), lr = li.getBoundingClientRect();
    const top = Math.max(pr.top, 0), bottom = Math.min(pr.bottom, window.innerHeight);
    if (lr.top < top || lr.bottom > bottom) panel.scrollTop += lr.top + lr.height / 2 - (top + bottom) / 2;
    const marks = { brand: shared.includes("brand"), category: shared.some((s) => s.startsWith("category")) };
    for (const root of [li, rec.el]) {
      if (marks.brand) $(".attr-brand", root).classList.add("shared");
      if (marks.category) $(".attr-category", root).classList.add("shared");
    }
  }

  // -- recommendations -----------------------------------------------------------------------------
  function describeCites(rec) {
    const { id, shared } = cited(rec);
    if (!id) return "";
    const li = state.history.get(id);
    const title = li ? $(".h-title", li).textContent : id;
    const what = shared.length ? ` (shared: ${shared.map((s) => s.replace("_parent", " family")).join(", ")})` : "";
    return `Cites: ${title}${what}${li ? "" : " — not in the history shown"}`;
  }

  function renderRanked(data) {
    const list = $("#rec-list");
    list.replaceChildren();
    state.recs.clear();
    state.order = [];
    state.requestId = data.request_id;
    const tpl = $("#rec-template");
    for (const r of data.items) {
      const li = tpl.content.firstElementChild.cloneNode(true);
      li.dataset.itemId = r.item.id;
      $(".rank", li).textContent = `${r.rank}.`;
      $(".title", li).textContent = r.item.title;
      const meta = $(".meta", li);
      meta.replaceChildren();
      attrSpans(meta, r.item);
      const id = document.createElement("code");
      id.className = "item-id";
      id.textContent = r.item.id;
      meta.append(id);
      const j = $(".justification", li);
      j.classList.add("pending");
      j.id = `just-${r.rank}`;
      j.setAttribute("aria-label", `Why ${r.item.title}: waiting for the justification`);
      $(".actions", li).setAttribute("aria-label", `Feedback on ${r.item.title}`);
      const rec = { data: r, el: li, text: "", justification: null };
      state.recs.set(r.item.id, rec);
      state.order.push(r.item.id);
      $(".cites", li).textContent = describeCites(rec);
      j.addEventListener("mouseenter", () => highlight(r.item.id));
      j.addEventListener("focus", () => highlight(r.item.id));
      j.addEventListener("mouseleave", clearHighlight);
      j.addEventListener("blur", clearHighlight);
      li.querySelectorAll("button.fb").forEach((b) => {
        b.disabled = !state.user;
        if (!state.user) b.title = "Look up a shopper to record feedback";
        b.addEventListener("click", () => sendFeedback(r.item.id, b));
      });
      list.append(li);
    }
    $("#export").disabled = data.items.length === 0;
  }

  function onChunk(data) {
    const rec = state.recs.get(data.item_id);
    if (!rec || rec.justification) return;
    if (state.timings.first_word_s === undefined && data.delta.trim()) {
      state.timings.first_word_s = (performance.now() - state.t0) / 1000;
      showTiming();
    }
    rec.text += data.delta;
    $(".justification .text", rec.el).textContent = rec.text;
  }

  function onFinal(data) {
    const rec = state.recs.get(data.item_id);
    if (!rec) return;
    const j = data.justification;
    rec.justification = j;
    rec.text = j.text;
    const box = $(".justification", rec.el);
    box.classList.remove("pending");
    $(".text", box).textContent = j.text;
    box.setAttribute("aria-label", `Why ${rec.data.item.title}: ${j.text}`);
    const src = $(".source", rec.el);
    src.className = `source ${j.source}`;
    src.textContent = j.source === "llm" ? `Written by ${j.model || "the LLM"}, checked against the facts`
      : `Standard wording${FALLBACK[j.fallback_reason] ? ` (${FALLBACK[j.fallback_reason]})` : ""}`;
    $(".cites", rec.el).textContent = describeCites(rec);
    if (state.timings.first_word_s === undefined && j.text) {
      state.timings.first_word_s = (performance.now() - state.t0) / 1000;
    }
    if (state.timings.first_final_s === undefined) {
      state.timings.first_final_s = (performance.now() - state.t0) / 1000;
    }
    if ([...state.recs.values()].every((r) => r.justification)) {
      state.timings.all_final_s = (performance.now() - state.t0) / 1000;
      status(`${state.recs.size} recommendations, all justified.`);
    }
    showTiming();
  }

  function showTiming() {
    const t = state.timings;
    const parts = [];
    if (t.ranked_s !== undefined) parts.push(`list after ${t.ranked_s.toFixed(2)} s`);
    if (t.first_word_s !== undefined) parts.push(`first words after ${t.first_word_s.toFixed(2)} s`);
    if (t.first_final_s !== undefined) parts.push(`first checked justification after ${t.first_final_s.toFixed(2)} s`);
    if (t.all_final_s !== undefined) parts.push(`all justified after ${t.all_final_s.toFixed(2)} s`);
    $("#timing").textContent = parts.join(" · ");
  }

  function showFilters(data) {
    const el = $("#filters");
    el.replaceChildren();
    const f = data.filters;
    const chips = [];
    if (f.user_id) chips.push(`shopper ${f.user_id}`);
    if (f.similar_to) chips.push(`like ${data.reference ? data.reference.title : f.similar_to}` +
                                 (data.reference ? ` (${money(data.reference.price)})` : ""));
    if (f.query) chips.push(`text “${f.query}”`);
    const rel = data.relative || {};
    if (rel.pricier) chips.push(`pricier than ${money(data.reference.price)}`);
    else if (f.min_price !== undefined) chips.push(`from ${money(f.min_price)}`);
    if (rel.cheaper) chips.push(`cheaper than ${money(data.reference.price)}`);
    else if (f.max_price !== undefined) chips.push(`up to ${money(f.max_price)}`);
    if (rel.other_brand) chips.push(`not ${data.reference.brand}`);
    if (f.brands) chips.push(`brands ${f.brands.join(", ")}`);
    const notBrands = (f.exclude_brands || []).filter((b) => !(rel.other_brand && b === data.reference.brand));
    if (notBrands.length) chips.push(`not ${notBrands.join(", ")}`);
    if (f.category) chips.push(`category ${f.category}`);
    if (!chips.length) return;
    el.append("Searching: ");
    for (const c of chips) {
      const s = document.createElement("span");
      s.className = "chip";
      s.textContent = c;
      el.append(s);
    }
    for (const n of data.notes || []) el.append(` Note: ${n}.`);
  }

  // -- the stream (server-sent events over fetch, so the token travels in a header) ------------------
  async function startStream(params) {
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    for (const k of Object.keys(state.timings)) delete state.timings[k];
    state.t0 = performance.now();
    state.timings.started = Date.now();
    $("#rec-list").replaceChildren();
    $("#timing").textContent = "";
    $("#export").disabled = true;
    clearHighlight();
    status("Ranking…");
    const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== undefined));
    let resp;
    try {
      resp = await fetch(`/api/stream?${qs}`, { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
    } catch (e) {
      if (e.name !== "AbortError") status(`The desk is unreachable: ${e.message}`, true);
      return;
    }
    if (!resp.ok) { status(await apiError(resp), true); return; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) handle(event, JSON.parse(data.join("\n")));
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") status(`The stream broke: ${e.message}`, true);
    }
  }

  function handle(event, data) {
    if (event === "filters") showFilters(data);
    else if (event === "ranked") {
      state.timings.ranked_s = (performance.now() - state.t0) / 1000;
      renderRanked(data);
      const none = data.excluded_no_price ? ` ${data.excluded_no_price} items without a price were left out.` : "";
      status(data.items.length ? `${data.items.length} recommendations; writing why…${none}`
                               : `No items match these filters.${none}`);
      state.timings.excluded_no_price = data.excluded_no_price;
      showTiming();
    } else if (event === "chunk") onChunk(data);
    else if (event === "final") onFinal(data);
    else if (event === "error") status(`${data.message} (${data.error})`, true);
    else if (event === "done") state.timings.done_s = (performance.now() - state.t0) / 1000;
  }

  // -- feedback ------------------------------------------------------------------------------------
  async function sendFeedback(itemId, button) {
    const rec = state.recs.get(itemId);
    const out = $(".fb-status", rec.el);
    const body = { user_id: state.user, item_id: itemId, kind: button.dataset.kind, request_id: state.requestId };
    if (button.dataset.helpful) body.helpful = button.dataset.helpful === "true";
    out.classList.remove("error");
    out.textContent = "Saving…";
    const resp = await fetch("/api/feedback", { method: "POST", headers: headers({ "Content-Type": "application/json" }),
                                                body: JSON.stringify(body) });
    if (!resp.ok) { out.classList.add("error"); out.textContent = `Not recorded: ${await apiError(resp)}`; return; }
    const { feedback_id: id } = await resp.json();
    $(".actions", rec.el).querySelectorAll("button.fb").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    out.textContent = `Recorded: ${button.textContent.toLowerCase()} (feedback #${id})`;
    out.dataset.feedbackId = id;
    if (body.kind === "dismiss") rec.el.classList.add("dismissed");
  }

  // -- CSV export of what the agent sees -----------------------------------------------------------
  function csvCell(v) {
    let s = v === null || v === undefined ? "" : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;      // a spreadsheet must not run catalog text as a formula
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }
  function buildCsv() {
    const rows = [["rank", "item_id", "title", "brand", "category", "price", "score", "justification", "source",
                   "cited_item_id", "request_id"]];
    for (const id of state.order) {
      const r = state.recs.get(id);
      const it = r.data.item;
      rows.push([r.data.rank, it.id, it.title, it.brand, it.category, it.price, r.data.score, r.text,
                 r.justification ? r.justification.source : "pending", cited(r).id || "", state.requestId]);
    }
    return rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
  }
  window.deskCsv = buildCsv;
  $("#export").addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([buildCsv()], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `recommendations-${state.user || "search"}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    status("CSV exported.");
  });

  // -- the two forms -------------------------------------------------------------------------------
  $("#lookup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $("#user").value.trim();
    if (!user) return;
    state.user = user;
    status(`Looking up ${user}…`);
    const stream = startStream({ user_id: user, k: $("#f-k").value });
    try { await loadHistory(user); } catch (e) {
      state.controller && state.controller.abort();
      $("#history-list").replaceChildren();
      $("#history-summary").textContent = "";
      status(e.message, true);
      return;
    }
    await stream;
  });

  $("#search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = (id) => $(id).value.trim();
    state.user = v("#user") && state.history.size ? state.user : "";
    if (!state.user) {
      $("#history-list").replaceChildren();
      $("#history-summary").textContent = "No shopper looked up: results are for the search alone, and feedback needs a shopper.";
    }
    startStream({ user_id: state.user, text: v("#search-text"), similar_to: v("#f-similar"), min_price: v("#f-min"),
                  max_price: v("#f-max"), brands: v("#f-brands"), exclude_brands: v("#f-exclude"), k: v("#f-k") });
  });
})();
