// The search page: talks to the API of the app that serves it, and builds every piece of text
// it shows with DOM nodes and textContent (no HTML parsing), so API text cannot inject markup.
"use strict";

(() => {
  const MODES = ["hybrid", "semantic", "keyword"];
  const DEFAULT_MODE = "hybrid";
  const DEFAULT_K = "10";
  const MAX_RETRIES = 30; // while the model loads (503), retry for about a minute
  const FIELD_NAMES = { q: "query", k: "number of results", mode: "mode", group_by: "grouping" };
  const APP_TITLE = "Semantic Search";

  // The server writes the proxy prefix (uvicorn --root-path) here; "" when there is none.
  const rawBase = document.querySelector('meta[name="api-base"]')?.content ?? "";
  const base = rawBase.includes("{{") ? "" : rawBase.replace(/\/+$/, "");

  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const queryInput = $("q");
  const modeSelect = $("mode");
  const groupBox = $("group");
  const statusLine = $("status");
  const errorBox = $("error");
  const errorMessage = $("error-message");
  const retryButton = $("retry");
  const resultsView = $("results-view");
  const resultsList = $("results");
  const documentView = $("document-view");
  const documentTitle = $("document-title");
  const documentMeta = $("document-meta");
  const documentText = $("document-text");
  const backButton = $("back");
  const info = $("info");
  const keyForm = $("key-form");
  const keyLabel = $("key-label");
  const keyInput = $("api-key");
  // A read key (SEARCH_READ_API_KEY), when the service asks for one: kept for this tab only.
  const KEY_STORAGE = "semantic-search-api-key";

  let current = null; // the last successful search: {key, search, response}
  let summary = ""; // the status line describing `current`
  let searchSeq = 0;
  let searchAbort = null;
  let retryTimer = 0;
  let retries = 0;
  let retrySearch = null;
  let documentSeq = 0;
  let documentAbort = null;
  let lastOpened = null; // data-key of the result whose document was opened
  let resultsScroll = null; // where the results were scrolled to when it was opened

  if ("scrollRestoration" in history) history.scrollRestoration = "manual";

  // ---- small helpers -------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function formatScore(value) {
    if (typeof value !== "number" || !Number.isFinite(value)) return "–";
    return Math.abs(value) >= 100 ? value.toFixed(1) : value.toFixed(3);
  }

  function formatMs(ms) {
    if (typeof ms !== "number") return "?";
    return ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
  }

  // The API counts characters in code points (Python), JavaScript strings in UTF-16 code units:
  // map code point offsets to string indices so astral characters (emoji…) do not shift marks.
  function codePoints(text) {
    const toIndex = [0];
    let index = 0;
    for (const char of text) {
      index += char.length;
      toIndex.push(index);
    }
    const length = toIndex.length - 1;
    return { length, index: (cp) => toIndex[Math.max(0, Math.min(length, cp))] };
  }

  // Valid, sorted, non-overlapping [start, end) spans within [0, length].
  function cleanSpans(spans, length) {
    const valid = (Array.isArray(spans) ? spans : [])
      .filter((s) => Array.isArray(s) && Number.isInteger(s[0]) && Number.isInteger(s[1]))
      .map(([s, e]) => [Math.max(0, s), Math.min(length, e)])
      .filter(([s, e]) => s < e)
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const merged = [];
    for (const span of valid) {
      const last = merged[merged.length - 1];
      if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
      else merged.push(span);
    }
    return merged;
  }

  // Append `text` to `parent`, with the code point spans wrapped in <mark>.
  function appendMarked(parent, text, spans, className) {
    const cps = codePoints(text);
    let at = 0;
    for (const [start, end] of cleanSpans(spans, cps.length)) {
      const from = cps.index(start);
      const to = cps.index(end);
      if (from > at) parent.append(text.slice(at, from));
      parent.append(el("mark", className, text.slice(from, to)));
      at = to;
    }
    if (at < text.length) parent.append(text.slice(at));
  }

  function describeDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => {
          const message = String(item?.msg ?? "invalid value");
          const loc = Array.isArray(item?.loc) ? item.loc.filter((p) => p !== "query") : [];
          const field = loc.length ? FIELD_NAMES[loc[loc.length - 1]] ?? loc.join(".") : "";
          return field ? `${field}: ${message}` : message;
        })
        .join("; ");
    }
    return "";
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  // ---- URL state -----------------------------------------------------------------------------

  function readUrl() {
    const params = new URLSearchParams(location.search);
    const mode = params.get("mode");
    return {
      q: (params.get("q") ?? "").trim(),
      mode: MODES.includes(mode) ? mode : DEFAULT_MODE,
      group: params.get("group_by") === "document",
      k: params.get("k") || DEFAULT_K,
      doc: params.get("doc"),
      chunk: params.get("chunk"),
    };
  }

  function searchParams(search) {
    const params = new URLSearchParams({ q: search.q, mode: search.mode });
    if (search.group) params.set("group_by", "document");
    if (search.k !== DEFAULT_K) params.set("k", search.k);
    return params;
  }

  function searchKey(search) {
    return searchParams(search).toString();
  }

  function pageUrl(search, doc, chunk) {
    const params = search.q ? searchParams(search) : new URLSearchParams();
    if (doc !== undefined && doc !== null) {
      params.set("doc", doc);
      if (chunk !== undefined && chunk !== null) params.set("chunk", String(chunk));
    }
    const query = params.toString();
    return query ? `?${query}` : location.pathname;
  }

  function fillForm(search) {
    queryInput.value = search.q;
    modeSelect.value = search.mode;
    groupBox.checked = search.group;
  }

  function formSearch() {
    return {
      q: queryInput.value.trim(),
      mode: MODES.includes(modeSelect.value) ? modeSelect.value : DEFAULT_MODE,
      group: groupBox.checked,
      k: readUrl().k,
    };
  }

  // ---- messages ------------------------------------------------------------------------------

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function showError(message, { retry = null } = {}) {
    errorMessage.textContent = message;
    retryButton.hidden = !retry;
    retrySearch = retry;
    errorBox.hidden = false;
  }

  function hideError() {
    errorBox.hidden = true;
    errorMessage.textContent = "";
    retryButton.hidden = true;
    retrySearch = null;
  }

  // ---- the API key ---------------------------------------------------------------------------

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return ""; // storage disabled: the key cannot be kept
    }
  }

  function apiHeaders() {
    const headers = { Accept: "application/json" };
    const key = apiKey();
    if (key) headers["X-API-Key"] = key;
    return headers;
  }

  // 401: no key was sent; 403: the key sent was refused. Either way, ask for one.
  function askForKey() {
    const refused = apiKey() !== "";
    keyLabel.textContent = refused
      ? "That API key was not accepted. Enter another key to search."
      : "This service needs an API key to search.";
    keyForm.hidden = false;
    setStatus("");
    keyInput.focus();
  }

  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    try {
      sessionStorage.setItem(KEY_STORAGE, key);
    } catch {
      // Storage is disabled: the key cannot be kept, so this page cannot search.
    }
    keyInput.value = "";
    keyForm.hidden = true;
    route();
    loadInfo();
  });

  // ---- search --------------------------------------------------------------------------------

  // Resolves once the first answer is in (a 503 schedules its retries and resolves).
  async function runSearch(search, { isRetry = false } = {}) {
    clearTimeout(retryTimer);
    if (!isRetry) retries = 0;
    searchAbort?.abort();
    const abort = new AbortController();
    searchAbort = abort;
    const seq = ++searchSeq;
    current = null;
    resultsView.setAttribute("aria-busy", "true");
    if (!isRetry) {
      hideError();
      setStatus(`Searching for “${search.q}”…`);
    }
    let response;
    try {
      const params = searchParams(search);
      params.set("k", search.k); // the page's default, not the API's
      response = await fetch(`${base}/search?${params}`, {
        headers: apiHeaders(),
        signal: abort.signal,
      });
    } catch (error) {
      if (seq !== searchSeq || error?.name === "AbortError") return;
      finishSearch();
      showError("Could not reach the search service. Check the connection, then retry.", {
        retry: search,
      });
      return;
    }
    const body = await readJson(response);
    if (seq !== searchSeq) return;
    finishSearch();

    if (response.ok && body && Array.isArray(body.results)) {
      hideError();
      current = { key: searchKey(search), search, response: body };
      renderResults(body);
      return;
    }
    const detail = describeDetail(body?.detail);
    if (response.status === 401 || response.status === 403) {
      hideError();
      askForKey();
    } else if (response.status === 503) {
      const wait = Math.min(30, Math.max(1, Number(response.headers.get("Retry-After")) || 2));
      const loading = !detail || /still loading|not loaded yet/i.test(detail);
      const what = loading
        ? "The search model is still loading."
        : `The search service is not available: ${detail}.`;
      if (retries < MAX_RETRIES) {
        retries += 1;
        showError(`${what} Trying again in ${plural(wait, "second", "seconds")}…`, {
          retry: search,
        });
        retryTimer = setTimeout(() => runSearch(search, { isRetry: true }), wait * 1000);
      } else {
        showError(`${what} Please try again in a moment.`, { retry: search });
      }
    } else if (response.status === 422) {
      showError(`This search cannot be run: ${detail || "invalid parameters"}.`);
    } else {
      const reason = detail || response.statusText || "unexpected answer";
      showError(`The search failed (HTTP ${response.status}): ${reason}.`, { retry: search });
    }
  }

  function finishSearch() {
    resultsView.removeAttribute("aria-busy");
    summary = "";
    setStatus("");
    resultsList.replaceChildren();
    resultsView.hidden = true;
  }

  function renderResults(body) {
    const results = body.results;
    const query = typeof body.query === "string" ? body.query : "";
    const took = formatMs(body.took_ms);
    if (results.length === 0) {
      summary = `No results for “${query}” (${body.mode}, ${took} ms).`;
      const empty = el("li", "empty");
      empty.append(
        el("p", "empty-title", "No passages matched."),
        el(
          "p",
          null,
          body.mode === "keyword"
            ? "Keyword mode needs the words themselves: try other words, or the hybrid or semantic mode."
            : "Try other words, or describe what you are looking for in a sentence.",
        ),
      );
      resultsList.replaceChildren(empty);
    } else {
      const count = plural(results.length, "result", "results");
      summary = `${count} for “${query}” (${body.mode}) in ${took} ms.`;
      resultsList.replaceChildren(...results.map((result) => renderResult(result, body.mode)));
    }
    setStatus(summary);
    document.title = `${query} – ${APP_TITLE}`;
    if (documentView.hidden) resultsView.hidden = false;
  }

  function resultKey(docId, chunkId) {
    return `${docId}\u0000${chunkId}`;
  }

  function renderResult(result, mode) {
    const item = el("li", "result");
    const docId = String(result.doc_id ?? "");
    const link = el("a", "result-link", result.title || docId);
    link.href = pageUrl(current.search, docId, result.chunk_id);
    link.dataset.key = resultKey(docId, result.chunk_id);
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
        return; // a new tab or window: let the browser follow the link
      }
      event.preventDefault();
      openDocument(result);
    });
    const heading = el("h3", "result-title");
    heading.append(link);

    const meta = el("p", "meta");
    meta.append(
      el("span", "rank", `#${result.rank}`),
      el("span", "score", `score ${formatScore(result.score)}`),
      el("span", "source", docId),
      el("span", "chunk", `passage ${Number(result.chunk_id) + 1}`),
    );

    const passage = el("p", "passage");
    appendMarked(passage, String(result.text ?? ""), result.highlights);

    item.append(heading, meta, passage);

    if (mode === "hybrid" && result.scores) {
      const parts = [];
      for (const name of ["semantic", "keyword"]) {
        const score = result.scores[name];
        const rank = result.ranks?.[name];
        if (typeof score === "number") {
          parts.push(`${name} ${formatScore(score)}${rank ? ` (#${rank})` : ""}`);
        } else {
          parts.push(`${name}: no match`);
        }
      }
      item.append(el("p", "evidence", parts.join(" · ")));
    }
    if (typeof result.other_matches === "number" && result.other_matches > 0) {
      const more = plural(result.other_matches, "more passage", "more passages");
      item.append(el("p", "evidence", `+ ${more} of this document matched`));
    }

    // The whole card opens the document on click, unless text is being selected.
    item.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      if (String(window.getSelection?.() ?? "").length > 0) return;
      openDocument(result);
    });
    return item;
  }

  // ---- document view -------------------------------------------------------------------------

  function openDocument(result) {
    const docId = String(result.doc_id);
    lastOpened = resultKey(docId, result.chunk_id);
    resultsScroll = window.scrollY;
    history.pushState({ fromResults: true }, "", pageUrl(current.search, docId, result.chunk_id));
    showDocument(docId, result.chunk_id, result);
  }

  async function showDocument(docId, chunk, result) {
    documentAbort?.abort();
    const abort = new AbortController();
    documentAbort = abort;
    const seq = ++documentSeq;
    resultsView.hidden = true;
    documentView.hidden = false;
    documentTitle.textContent = "Loading the document…";
    documentMeta.textContent = docId;
    documentText.replaceChildren();
    hideError();
    window.scrollTo(0, 0);

    let response;
    try {
      response = await fetch(`${base}/documents/${encodeURIComponent(docId)}`, {
        headers: apiHeaders(),
        signal: abort.signal,
      });
    } catch (error) {
      if (seq !== documentSeq || error?.name === "AbortError") return;
      documentTitle.textContent = "The document could not be loaded";
      showError("Could not reach the search service. Check the connection, then try again.");
      documentTitle.focus();
      return;
    }
    const body = await readJson(response);
    if (seq !== documentSeq) return;
    if (response.status === 401 || response.status === 403) {
      documentTitle.textContent = "The document could not be loaded";
      askForKey();
      return;
    }
    if (!response.ok || !body || typeof body.text !== "string") {
      documentTitle.textContent = "The document could not be loaded";
      const detail = describeDetail(body?.detail) || response.statusText;
      showError(`The document could not be loaded (HTTP ${response.status}): ${detail}.`);
      documentTitle.focus();
      return;
    }
    renderDocument(body, chunk, result);
  }

  function renderDocument(doc, chunk, result) {
    const chunkId = chunk === null || chunk === undefined || chunk === "" ? NaN : Number(chunk);
    const passages = Array.isArray(doc.passages) ? doc.passages : [];
    const span =
      result && result.doc_id === doc.doc_id
        ? { start: result.start, end: result.end }
        : passages.find((p) => p.chunk_id === chunkId);
    const title = doc.title || doc.doc_id;
    documentTitle.textContent = title;
    document.title = `${title} – ${APP_TITLE}`;

    const meta = [String(doc.doc_id), plural(Number(doc.chars) || 0, "character", "characters")];
    if (span && Number.isInteger(chunkId)) {
      meta.push(`passage ${chunkId + 1} of ${passages.length} is highlighted`);
    }
    documentMeta.textContent = meta.join(" · ");

    const text = doc.text;
    const cps = codePoints(text);
    let passageMark = null;
    if (span && Number.isInteger(span.start) && Number.isInteger(span.end)) {
      const from = cps.index(span.start);
      const to = cps.index(span.end);
      passageMark = el("mark", "passage-mark");
      passageMark.tabIndex = -1;
      passageMark.setAttribute("aria-label", "Matching passage");
      const passageText = text.slice(from, to);
      appendMarked(passageMark, passageText, result ? result.highlights : [], "hit");
      documentText.replaceChildren(text.slice(0, from), passageMark, text.slice(to));
    } else {
      documentText.replaceChildren(text);
    }

    setStatus(
      passageMark
        ? `Showing the document “${title}”, with the passage highlighted.`
        : `Showing the document “${title}”.`,
    );
    if (passageMark) {
      passageMark.focus({ preventScroll: true });
      passageMark.scrollIntoView({ block: "center" });
    } else {
      documentTitle.focus();
    }
  }

  function showResults() {
    documentAbort?.abort();
    documentSeq += 1;
    documentView.hidden = true;
    documentText.replaceChildren();
    resultsView.hidden = !current;
    setStatus(summary);
    if (current) document.title = `${current.search.q} – ${APP_TITLE}`;
    const link = lastOpened
      ? [...resultsList.querySelectorAll("a.result-link")].find(
          (a) => a.dataset.key === lastOpened,
        )
      : null;
    if (link) {
      link.focus({ preventScroll: true });
      if (resultsScroll === null) link.scrollIntoView({ block: "center" });
      else window.scrollTo(0, resultsScroll);
    } else {
      window.scrollTo(0, 0);
    }
  }

  function backToResults() {
    if (history.state?.fromResults) {
      history.back(); // popstate renders the results
      return;
    }
    // Opened from a link: drop the document from the URL.
    history.replaceState(null, "", pageUrl(readUrl()));
    route();
  }

  // ---- wiring --------------------------------------------------------------------------------

  // Render what the URL says: the search, and possibly one document.
  async function route() {
    const state = readUrl();
    fillForm(state);
    const searching =
      state.q && (!current || current.key !== searchKey(state)) ? runSearch(state) : null;
    if (!state.q && !state.doc) {
      clearTimeout(retryTimer);
      current = null;
      summary = "";
      hideError();
      resultsList.replaceChildren();
      documentView.hidden = true;
      resultsView.hidden = true;
      setStatus("");
      document.title = APP_TITLE;
      return;
    }
    if (state.doc) {
      if (!history.state?.fromResults) {
        lastOpened = resultKey(state.doc, state.chunk); // opened by a link: no scroll to restore
        resultsScroll = null;
      }
      if (searching) await searching;
      const found = current?.response.results.find(
        (r) => r.doc_id === state.doc && String(r.chunk_id) === state.chunk,
      );
      await showDocument(state.doc, state.chunk, found);
    } else {
      if (searching) await searching;
      showResults();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const search = formSearch();
    if (!search.q) {
      showError("Type a few words to search for.");
      queryInput.focus();
      return;
    }
    lastOpened = null;
    history.replaceState(null, "", pageUrl(search));
    documentView.hidden = true;
    documentText.replaceChildren();
    runSearch(search);
  });

  // Changing the mode or the grouping re-runs the search on screen.
  for (const control of [modeSelect, groupBox]) {
    control.addEventListener("change", () => {
      if (queryInput.value.trim() && (current || summary || !errorBox.hidden)) form.requestSubmit();
    });
  }

  retryButton.addEventListener("click", () => {
    if (retrySearch) runSearch(retrySearch);
  });

  backButton.addEventListener("click", backToResults);

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || documentView.hidden || event.defaultPrevented) return;
    if (event.target instanceof Element && event.target.matches("input, select, textarea")) {
      return; // Escape clears a search box or closes a menu there
    }
    event.preventDefault();
    backToResults();
  });

  window.addEventListener("popstate", () => route());

  // Facts about the index, for the footer; not needed for searching.
  function loadInfo() {
    fetch(`${base}/info`, { headers: apiHeaders() })
      .then((response) => (response.ok ? response.json() : null))
      .then((body) => {
        if (!body) return;
        const model = String(body.model ?? "").split("/").pop();
        info.textContent = [
          plural(Number(body.documents) || 0, "document", "documents"),
          plural(Number(body.passages) || 0, "passage", "passages"),
          model && `model ${model}`,
        ]
          .filter(Boolean)
          .join(" · ");
      })
      .catch(() => {});
  }

  loadInfo();
  route();
})();
