// The live θ control (explorer/components/live_theta.py): a slider and a number box whose dependent
// numbers, table rows and chart marks are recomputed here on every animation frame while θ moves
// (live_math.js, the engine's arithmetic), with one server rerun per release ("commit" trigger).
// One instance per page; the server sends {page, theta, rev, payload_id, payload, view} (see the .py).

// Shared by the tab's pages: commits sent, the instance per page, plotly, decoded payloads by id
const LIVE = (window.__sidenetsLive ||= { sent: 0, pages: {}, plotly: null, cache: new Map() });
const CACHED_PAYLOADS = 6;
LIVE.math = { pyFixed, signed, pm, fmtCost, npSum, meanStd }; // (for tests: the arithmetic against Python's)
const grid = (v) => Math.round(v * 1000) / 1000; // the slider's 0.001 grid, as the double Python parses
const r6 = (v) => (Number.isFinite(v) ? Math.round(v * 1e6) / 1e6 : null); // figures._list
const nan0 = (v) => (Number.isFinite(v) ? v : 0);
const KEY_COMMIT_MS = 200;
const cell = (v) => (Number.isNaN(v) ? "–" : pyFixed(v, 2)); // live_theta.fixed // keyboard steps: one rerun once the keys rest

function loadPlotly(url) { // plotly.min.js of the plotly package, served by this app (app/static)
  if (window.Plotly) return Promise.resolve(window.Plotly);
  LIVE.plotly ||= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = url;
    s.onload = () => resolve(window.Plotly);
    s.onerror = () => { LIVE.plotly = null; reject(new Error(`cannot load ${url}`)); };
    document.head.appendChild(s);
  });
  return LIVE.plotly;
}
function el(tag, cls, parent, attrs = {}) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function setText(e, text) { if (e.textContent !== text) e.textContent = text; }
function setRich(e, text) { // "**bold** plain" as DOM nodes (never HTML: labels are user data)
  if (e.dataset.text === text) return;
  e.dataset.text = text;
  e.replaceChildren(...text.split("**").map((part, i) => {
    if (i % 2 === 0) return document.createTextNode(part);
    const b = document.createElement("strong"); b.textContent = part; return b;
  }));
}

// -- what each page shows at θ -------------------------------------------------------------------
const VIEWS = {
  tradeoff(v, data, t) {
    const sums = data.map((cfg) => summaryAt(cfg, t, "main")), s = sums[v.focus], th = pyFixed(t, 3);
    const gain = signed(100 * s.accuracy_gain.mean, 2);
    const cards = [
      { label: "Cascade accuracy", value: pm(s.accuracy), delta: `${gain} pts vs MainNet alone`,
        color: gain === "±0.00" ? "off" : "normal",
        help: `Mean ± std over ${s.n_runs} seed(s). MainNet alone: ${pm(s.main_accuracy)}; SideNet alone: ${pm(s.side_accuracy)}.` },
      { label: "Exit fraction", value: pm(s.exit_fraction, 100, 1),
        help: `Samples answered by the SideNet. Accuracy of those: ${pm(s.exited_accuracy)}; of the deferred ones: ${pm(s.deferred_accuracy)}.` },
      ...v.kinds.map((k) => ({
        label: `Average ${v.cost_names[k]} / input`, value: fmtCost(s.avg[k].mean, k),
        delta: `${signed(-100 * s.saving[k].mean, 1)}% vs MainNet alone`, color: "inverse",
        help: `MainNet alone: ${fmtCost(s.full[k].mean, k)} per input. Saving: ${pm(s.saving[k], 100, 1)}.` })),
    ];
    const marks = sums.map((x) => ({ x: x.avg[v.kind], y: x.accuracy, text: `θ = ${th}, exit ${pyFixed(100 * x.exit_fraction.mean, 1)}%` }));
    const rows = sums.map((x, i) => [v.labels[i], String(x.n_runs), cell(100 * x.accuracy.mean), cell(100 * x.accuracy.std),
      cell(100 * x.exit_fraction.mean), cell(100 * x.main_accuracy.mean),
      ...v.kinds.flatMap((k) => [cell(x.avg[k].mean / v.table_div[k]), cell(100 * x.saving[k].mean)])]);
    return { cards, marks, rows, title: `θ = ${th} (diamonds)`, summaries: sums };
  },
  ensemble(v, data, t) {
    const th = pyFixed(t, 3), cards = [], marks = [], summaries = [], rows = [];
    data.forEach((cfg, i) => {
      const plain = summaryAt(cfg, t, "main"), ens = summaryAt(cfg, t, "ensemble"), s = v.on ? ens : plain;
      const gain = meanStd(plain.per.map((p, j) => ens.per[j].accuracy - p.accuracy));
      summaries.push({ plain, ensemble: ens, gain });
      rows.push([v.labels[i], cell(100 * s.exit_fraction.mean), cell(100 * plain.accuracy.mean), cell(100 * ens.accuracy.mean),
                 cell(100 * plain.deferred_accuracy.mean), cell(100 * ens.deferred_accuracy.mean)]);
      marks.push({ x: s.avg[v.kind], y: s.accuracy, text: `θ = ${th}` });
      if (i < 3) cards.push({ label: `Cascade accuracy: ${v.labels[i]}`, value: pm(s.accuracy),
        delta: v.on ? `${signed(100 * gain.mean, 2)} pts from the ensemble` : null, color: "normal",
        help: `Exit fraction ${pm(s.exit_fraction, 100, 1)}; deferred samples right: ${pm(s.deferred_accuracy, 100, 1)}.` });
    });
    const text = `**At θ = ${th}**, deferred samples answered by ` +
      (v.on ? "**SideNet + MainNet logits**" : "**the MainNet alone**") + ".";
    return { cards, marks, rows, text, summaries };
  },
  calibration(v, data, t) {
    const pops = populationsAt(data, t);
    const rows = POPULATIONS.map((p) => [v.names[p], pm(pops[p].fraction, 100, 1, ""), pm(pops[p].accuracy, 100, 2, ""),
      pm(pops[p].confidence, 100, 2, ""), pm(pops[p].ece, 100, 2, "")]);
    const text = `**At θ = ${pyFixed(t, 3)}**: the samples that exit (answered by the SideNet), those deferred to the ` +
      "MainNet, and the whole cascade.";
    return { rows, text, populations: pops };
  },
};

// -- one page's control ------------------------------------------------------------------------------
class Live {
  constructor(host) {
    this.host = host;
    this.root = el("div", "snl", host, { "data-testid": "liveTheta" });
    const top = el("div", "snl-theta", this.root);
    this.label = el("div", "snl-label", top);
    const row = el("div", "snl-row", top);
    this.slider = el("input", "snl-slider", row, { type: "range", min: "0", max: "1", step: "0.001",
                                                   "data-testid": "liveThetaSlider", "aria-label": "θ" });
    this.box = el("input", "snl-box", row, { type: "number", min: "0", max: "1", step: "0.001",
                                             "data-testid": "liveThetaBox", "aria-label": "θ (number)" });
    this.text = el("div", "snl-text", this.root);
    this.cards = el("div", "snl-cards", this.root);
    this.table = el("table", "snl-table", this.root, { "data-testid": "liveTable" });
    this.chart = el("div", "snl-chart", this.root);
    this.theta = NaN; this.raf = 0; this.timer = 0; this.dragging = false; this.keyboard = false;
    this.bind();
  }

  bind() {
    const s = this.slider, b = this.box;
    s.addEventListener("pointerdown", () => { this.dragging = true; this.keyboard = false; });
    this.onUp = () => { this.dragging = false; };
    window.addEventListener("pointerup", this.onUp);
    window.addEventListener("pointercancel", this.onUp);
    s.addEventListener("keydown", () => { this.keyboard = true; });
    s.addEventListener("input", () => this.move(grid(Number(s.value)), "slider"));
    s.addEventListener("change", () => this.commit(this.keyboard ? KEY_COMMIT_MS : 0));
    b.addEventListener("input", (e) => { // arrow keys and the spinner step live; typed text waits for Enter
      const v = Number(b.value);
      if (!e.inputType && b.value !== "" && v >= 0 && v <= 1) this.move(grid(v), "box");
    });
    const settle = () => {
      const v = Number(b.value);
      if (b.value === "" || !Number.isFinite(v)) { b.value = pyFixed(this.theta, 3); return; }
      this.move(grid(Math.min(1, Math.max(0, v))), null);
      this.commit(0);
    };
    b.addEventListener("change", settle);
    b.addEventListener("keydown", (e) => {
      if (e.key === "Enter") settle();
      else if (e.key === "ArrowUp" || e.key === "ArrowDown") this.commit(KEY_COMMIT_MS * 2);
    });
  }

  move(theta, source) { // a new θ from the user: repaint on the next frame
    this.theta = theta;
    if (source !== "slider") this.slider.value = String(theta);
    if (source !== "box") this.box.value = pyFixed(theta, 3);
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.paint(); });
  }

  commit(delay) { // send θ to the server (one rerun), now or once the keys rest
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = 0;
      const pending = LIVE.sent > this.serverRev; // a commit on its way: the server will answer with its θ
      if (this.theta === (pending ? this.sentTheta : this.serverTheta)) return;
      LIVE.sent += 1;
      this.sentTheta = this.theta;
      this.trigger("commit", { theta: this.theta, rev: LIVE.sent, have: [...LIVE.cache.keys()] });
    }, delay);
  }

  update(data, trigger) { // a server run: new data (and θ unless the user has moved on since)
    this.trigger = trigger;
    if (data.session !== LIVE.session) { LIVE.session = data.session; LIVE.sent = data.rev; } // (a server restart)
    this.view = data.view;
    if (data.payload_id !== this.payloadId) { // decoded once per id; the server skips ids this tab has
      let prepared = LIVE.cache.get(data.payload_id);
      if (!prepared && data.payload) {
        prepared = data.page === "calibration" ? preparePopulations(data.payload) : data.payload.map(prepareCascade);
        LIVE.cache.set(data.payload_id, prepared);
        if (LIVE.cache.size > CACHED_PAYLOADS) LIVE.cache.delete(LIVE.cache.keys().next().value);
      }
      if (!prepared) { trigger("missing", data.payload_id); return; } // (evicted here): the server sends it again
      this.data = prepared;
      this.payloadId = data.payload_id;
    }
    this.page = data.page;
    for (const name of data.view.order || []) this.root.appendChild(this[name]); // the page's order of sections
    LIVE.pages[data.page] = this;
    setText(this.label, data.label);
    this.label.title = data.help || "";
    this.serverRev = data.rev; this.serverTheta = data.theta;
    if (Number.isNaN(this.theta) || (data.rev >= LIVE.sent && !this.dragging && !this.timer)) {
      this.theta = data.theta;
      this.slider.value = String(data.theta);
      if (document.activeElement !== this.box) this.box.value = pyFixed(data.theta, 3);
    }
    this.setupChart(data);
    const shown = this.paint(false);
    if (this.theta === data.theta) this.check(shown, data.view.expect);
    this.root.dataset.serverRev = String(data.rev);
    this.root.dataset.serverTheta = pyFixed(data.theta, 3);
  }

  compute(t) { return VIEWS[this.page](this.view, this.data, t); }

  paint(full = false) { // compute at this.theta and write what changed
    const out = this.compute(this.theta);
    this.root.dataset.theta = pyFixed(this.theta, 3);
    this.paintText(out.text);
    this.paintCards(out.cards || []);
    this.paintTable(out.rows);
    this.paintChart(out, full);
    return out;
  }

  paintText(text) { this.text.hidden = !text; if (text) setRich(this.text, text); }

  paintCards(cards) {
    if (this.cards.children.length !== cards.length) {
      this.cards.replaceChildren(...cards.map(() => {
        const c = el("div", "snl-card", null, { "data-testid": "liveMetric" });
        el("div", "snl-card-label", c, { "data-testid": "liveMetricLabel" });
        el("div", "snl-card-value", c, { "data-testid": "liveMetricValue" });
        el("div", "snl-card-delta", c, { "data-testid": "liveMetricDelta" });
        return c;
      }));
    }
    cards.forEach((card, i) => {
      const c = this.cards.children[i], [label, value, delta] = c.children;
      setText(label, card.label); setText(value, card.value);
      c.title = card.help || "";
      delta.hidden = !card.delta;
      if (card.delta) {
        const down = card.delta.startsWith("-"), good = card.color === "inverse" ? down : !down;
        setText(delta, `${down ? "↓" : "↑"} ${card.delta}`);
        delta.dataset.tone = card.color === "off" ? "off" : good ? "good" : "bad";
      }
    });
  }

  paintTable(rows) {
    this.table.hidden = !rows;
    if (!rows) return;
    const cols = this.view.columns;
    if (this.table.rows.length !== rows.length + 1 || this.table.dataset.cols !== cols.join("|")) {
      this.table.dataset.cols = cols.join("|");
      const head = el("tr", null, el("thead", null, null));
      cols.forEach((c) => { el("th", null, head).textContent = c; });
      const body = el("tbody");
      rows.forEach((r) => { const tr = el("tr", null, body); r.forEach(() => el("td", null, tr)); });
      this.table.replaceChildren(head.parentNode, body);
    }
    rows.forEach((r, i) => r.forEach((cell, j) => setText(this.table.tBodies[0].rows[i].cells[j], cell)));
  }

  setupChart(data) { // (re)draw the server's figure when it changes; marks follow θ in paintChart
    const spec = data.view.chart;
    this.chart.hidden = !spec;
    if (!spec || spec.revision === this.chartRevision) return;
    this.chartRevision = spec.revision;
    this.figure = { data: spec.figure.data, layout: { ...spec.figure.layout, uirevision: spec.revision } };
    this.chart.style.minHeight = `${spec.figure.layout.height || 450}px`;
    if (!data.plotly_url) { // (the app's .streamlit/config.toml sets it; `make run` and explorer.serve read it)
      this.chart.textContent = "The chart needs the app's static files: run the app with server.enableStaticServing = true.";
      return;
    }
    loadPlotly(data.plotly_url).then((Plotly) => {
      this.Plotly = Plotly;
      if (!this.ro) {
        this.ro = new ResizeObserver(() => { if (this.chart.isConnected && this.drawn) Plotly.Plots.resize(this.chart); });
        this.ro.observe(this.chart);
        this.overlay = new Overlay(this.chart);
      }
      this.paintChart(this.compute(this.theta), true);
      if (!this.afterplot) { // zoom, pan, resize: the overlay follows the new scale; hover: plotly catches up
        this.afterplot = true;
        this.chart.on("plotly_afterplot", () => { if (this.plot) this.overlay.draw(this.plot.marks); });
        this.chart.addEventListener("pointerenter", () => this.replot());
      }
    }).catch((err) => { this.chart.textContent = `The chart cannot be drawn: ${err.message}`; });
  }

  paintChart(out, full) { // the overlay follows θ; plotly redraws when full (a new figure) or the pointer enters
    if (!this.Plotly || !this.figure) return;
    this.plot = chartUpdate(this.view.chart, this.figure, out);
    this.chart.classList.toggle("snl-own-bars", !!out.populations);
    if (full) this.replot();
    this.overlay.draw(this.plot.marks);
  }

  replot() { // plotly at this.theta (hover texts included)
    if (!this.plot || this.plotTheta === this.theta && this.plotFigure === this.figure) return;
    this.Plotly.react(this.chart, this.plot.data, this.plot.layout, { displaylogo: false, responsive: true });
    this.plotTheta = this.theta; this.plotFigure = this.figure; this.drawn = true;
  }

  check(shown, expect) { // the browser's numbers at the server's θ must be the engine's
    if (!expect) return;
    const mine = { cards: (shown.cards || []).map((c) => [c.label, c.value, c.delta ?? null]), rows: shown.rows ?? null,
                   text: shown.text ?? null };
    const theirs = { cards: expect.cards ?? [], rows: expect.rows ?? null, text: expect.text ?? null };
    const ok = JSON.stringify(mine) === JSON.stringify(theirs);
    this.root.dataset.agrees = String(ok);
    if (!ok) console.error("live θ: the browser and the engine disagree", { browser: mine, engine: theirs });
  }

  probe(t) { // for tests: what the page shows at t, and the raw numbers (JSON-safe)
    const out = this.compute(t), plain = (v) => JSON.parse(JSON.stringify(v, (k, x) =>
      (typeof x === "number" && !Number.isFinite(x) ? String(x) : ArrayBuffer.isView(x) ? undefined : x)));
    return plain({ cards: (out.cards || []).map((c) => [c.label, c.value, c.delta ?? null]), rows: out.rows ?? null,
                   text: out.text ?? null, summaries: out.summaries ?? null, populations: out.populations ?? null });
  }

  destroy() {
    window.removeEventListener("pointerup", this.onUp);
    window.removeEventListener("pointercancel", this.onUp);
    if (this.ro) this.ro.disconnect();
    if (this.Plotly) this.Plotly.purge(this.chart);
    if (LIVE.pages[this.page] === this) delete LIVE.pages[this.page];
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!data) return undefined;
  const live = (parentElement.__snLive ||= new Live(parentElement));
  live.update(data, setTriggerValue);
  return () => setTimeout(() => { if (!parentElement.isConnected) { live.destroy(); delete parentElement.__snLive; } }, 0);
}
