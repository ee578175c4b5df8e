// The live θ control's arithmetic: engine.metrics / engine.analysis and explorer.formatting, redone in
// the browser bit for bit (the same float64 operations in the same order). No DOM here.
// Shapes: R runs, N samples per run, B bins.

// -- the payload (engine/analysis/live.py): base64 little-endian arrays ---------------------------
function b64bytes(text) {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const f8 = (text) => { const u = b64bytes(text); return new Float64Array(u.buffer, 0, u.length >> 3); };
function bitsOf(text, n) { // (N,) 0/1 bytes of np.packbits(bitorder="little")
  const u = b64bytes(text), out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (u[i >> 3] >> (i & 7)) & 1;
  return out;
}
function cumsum(b) { // (N + 1,): c[k] = b[0] + ... + b[k - 1]
  const c = new Int32Array(b.length + 1);
  for (let i = 0; i < b.length; i++) c[i + 1] = c[i] + b[i];
  return c;
}
function lowerBound(sorted, t) { // np.searchsorted(sorted, t, "left") = #(sorted < t)
  let lo = 0, hi = sorted.length;
  while (lo < hi) { const m = (lo + hi) >>> 1; if (sorted[m] < t) lo = m + 1; else hi = m; }
  return lo;
}
function binOf(edges, c) { // reliability(): clip(searchsorted(edges, c, "right") - 1, 0, B - 1)
  let lo = 0, hi = edges.length;
  while (lo < hi) { const m = (lo + hi) >>> 1; if (edges[m] <= c) lo = m + 1; else hi = m; }
  return Math.min(Math.max(lo - 1, 0), edges.length - 2);
}

// -- numpy's float64 sum (pairwise, 8 accumulators, blocks of 128) and nanmean / nanstd(ddof=1) ----
function npSum(a, lo = 0, n = a.length) {
  if (n < 8) { let s = 0.0; for (let i = lo; i < lo + n; i++) s += a[i]; return s; }
  if (n <= 128) {
    const r = [a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[lo + i + j];
    let s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) s += a[lo + i];
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return npSum(a, lo, n2) + npSum(a, lo + n2, n - n2);
}
function meanStd(values) { // engine.analysis.summary.MeanStd.of: {mean, std, n}
  const n = values.length, a = new Float64Array(n);
  let cnt = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(values[i])) { a[i] = values[i]; cnt++; }
  if (!n) return { mean: NaN, std: NaN, n: 0 };
  const mean = npSum(a) / cnt;
  for (let i = 0; i < n; i++) { const d = Number.isNaN(values[i]) ? 0 : a[i] - mean; a[i] = d * d; }
  const std = cnt - 1 > 0 ? Math.sqrt(npSum(a) / (cnt - 1)) : NaN;
  return { mean, std, n: cnt };
}
const ratio = (num, den) => (den ? num / den : NaN);

// -- cascade numbers (ThetaCurve.at, summary.summary_at) --------------------------------------------
function prepareCascade(payload) { // {kinds, runs} -> decoded runs with prefix counts
  return {
    kinds: payload.kinds,
    runs: payload.runs.map((r) => {
      const side = bitsOf(r.side, r.n), cum = {};
      for (const fb of ["main", "ensemble"]) if (r[fb]) cum[fb] = cumsum(bitsOf(r[fb], r.n));
      const cumSide = cumsum(side);
      return { n: r.n, scores: f8(r.scores), cumSide, sideTotal: cumSide[r.n], cum, costs: r.costs,
               main_accuracy: r.main_accuracy };
    }),
  };
}
function runAt(r, t, fb, kinds) { // ThetaCurve.at(t, costs) of one run
  const n = r.n, deferred = t >= 1.0 ? n : lowerBound(r.scores, t);
  const sideOk = r.sideTotal - r.cumSide[deferred], fbOk = r.cum[fb][deferred];
  const exitFraction = (n - deferred) / n;
  const out = { accuracy: (sideOk + fbOk) / n, exit_fraction: exitFraction, side_accuracy: r.sideTotal / n,
                main_accuracy: r.main_accuracy, deferred_accuracy: ratio(fbOk, deferred),
                exited_accuracy: ratio(sideOk, n - deferred), n_exit: n - deferred, avg: {}, saving: {} };
  for (const k of kinds) {
    const [trunk, sidenet, rest, full] = r.costs[k];
    out.avg[k] = trunk + sidenet + (1.0 - exitFraction) * rest;
    out.saving[k] = 1.0 - out.avg[k] / full;
  }
  return out;
}
function summaryAt(cfg, t, fb = "main") { // summary_at(runs, t, ensemble=fb == "ensemble")
  const per = cfg.runs.map((r) => runAt(r, t, fb, cfg.kinds));
  const of = (f) => meanStd(per.map(f));
  const s = { theta: t, n_runs: per.length, per, accuracy: of((p) => p.accuracy), exit_fraction: of((p) => p.exit_fraction),
              exited_accuracy: of((p) => p.exited_accuracy), deferred_accuracy: of((p) => p.deferred_accuracy),
              side_accuracy: of((p) => p.side_accuracy), main_accuracy: of((p) => p.main_accuracy),
              accuracy_gain: of((p) => p.accuracy - p.main_accuracy), avg: {}, saving: {}, full: {} };
  for (const k of cfg.kinds) {
    s.avg[k] = of((p) => p.avg[k]);
    s.saving[k] = of((p) => p.saving[k]);
    s.full[k] = meanStd(cfg.runs.map((r) => r.costs[k][3]));
  }
  return s;
}

// -- calibration populations (calibration.populations_at) -------------------------------------------
function preparePopulations(payload) { // {edges, runs} -> decoded runs with each sample's bin
  const edges = Float64Array.from(payload.edges), nb = edges.length - 1, bound = new Float64Array(nb);
  const out = {
    edges,
    runs: payload.runs.map((r) => {
      const scores = f8(r.scores), sideConf = r.side_conf ? f8(r.side_conf) : scores, fbConf = f8(r.fb_conf);
      const sideBin = new Uint8Array(r.n), fbBin = new Uint8Array(r.n);
      for (let i = 0; i < r.n; i++) {
        sideBin[i] = binOf(edges, sideConf[i]); fbBin[i] = binOf(edges, fbConf[i]);
        bound[sideBin[i]] += 1 / payload.runs.length; bound[fbBin[i]] += 1 / payload.runs.length;
      }
      return { n: r.n, scores, sideConf, fbConf, sideOk: bitsOf(r.side_ok, r.n), fbOk: bitsOf(r.fb_ok, r.n), sideBin, fbBin };
    }),
  };
  out.countMax = Math.max(1, ...bound); // no population's mean count per bin exceeds it, whatever θ (the chart's axis)
  return out;
}
const POPULATIONS = ["exited", "deferred", "cascade"];
function populationsRun(r, t, nb) { // one run: per population size, ok, conf (in sample order) and bin sums
  const pops = (r.pops ||= Object.fromEntries(POPULATIONS.map((name) => [name, { conf: new Float64Array(r.n),
    count: new Float64Array(nb), sumConf: new Float64Array(nb), sumAcc: new Float64Array(nb), gap: new Float64Array(nb) }])));
  const E = pops.exited, D = pops.deferred, C = pops.cascade;
  for (const p of [E, D, C]) { p.size = 0; p.ok = 0; p.count.fill(0); p.sumConf.fill(0); p.sumAcc.fill(0); }
  const exits = t < 1.0; // population_masks: theta >= 1 never exits
  const { scores, sideConf, sideOk, sideBin, fbConf, fbOk, fbBin } = r;
  for (let i = 0; i < r.n; i++) {
    let p, bin, conf, ok;
    if (exits && scores[i] >= t) { p = E; bin = sideBin[i]; conf = sideConf[i]; ok = sideOk[i]; }
    else { p = D; bin = fbBin[i]; conf = fbConf[i]; ok = fbOk[i]; }
    p.conf[p.size++] = conf; p.ok += ok; p.count[bin] += 1; p.sumConf[bin] += conf; p.sumAcc[bin] += ok;
    C.conf[C.size++] = conf; C.ok += ok; C.count[bin] += 1; C.sumConf[bin] += conf; C.sumAcc[bin] += ok;
  }
  const out = {};
  for (const name of POPULATIONS) {
    const p = pops[name];
    for (let b = 0; b < nb; b++) p.gap[b] = Math.abs(p.sumAcc[b] - p.sumConf[b]);
    out[name] = { size: p.size, fraction: p.size / r.n, accuracy: p.size ? p.ok / p.size : NaN,
                  confidence: p.size ? npSum(p.conf, 0, p.size) / p.size : NaN, ece: p.size ? npSum(p.gap) / p.size : NaN,
                  count: p.count, sumConf: p.sumConf, sumAcc: p.sumAcc };
  }
  return out;
}
function populationsAt(data, t) { // {population: {fraction, accuracy, confidence, ece (MeanStd), bins}, countMax}
  const nb = data.edges.length - 1, per = data.runs.map((r) => populationsRun(r, t, nb)), out = { countMax: data.countMax };
  for (const name of POPULATIONS) {
    const ps = per.map((p) => p[name]), of = (f) => meanStd(ps.map(f)), bins = [];
    for (let b = 0; b < nb; b++) { // reliability_summary per bin (for the chart: display precision)
      const acc = ps.map((p) => (p.count[b] ? p.sumAcc[b] / p.count[b] : NaN));
      const conf = ps.map((p) => (p.count[b] ? p.sumConf[b] / p.count[b] : NaN));
      bins.push({ accuracy: meanStd(acc), confidence: meanStd(conf), count: meanStd(ps.map((p) => p.count[b])).mean });
    }
    out[name] = { fraction: of((p) => p.fraction), accuracy: of((p) => p.accuracy), confidence: of((p) => p.confidence),
                  ece: of((p) => p.ece), sizes: ps.map((p) => p.size), bins };
  }
  return out;
}

// -- explorer.formatting ------------------------------------------------------------------------------
function pyFixed(x, digits) { // Python's f"{x:.{digits}f}": exact binary value, ties to even
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "nan" : x > 0 ? "inf" : "-inf";
  const neg = x < 0 || Object.is(x, -0), ax = Math.abs(x);
  let text = ax.toFixed(digits); // exact decimal, but ties go away from zero
  if (ax < 1e21) {
    const exact = ax.toFixed(100), dot = exact.indexOf("."), frac = exact.slice(dot + 1);
    if (frac[digits] === "5" && /^0*$/.test(frac.slice(digits + 1))) { // an exact tie
      const down = digits ? exact.slice(0, dot + 1 + digits) : exact.slice(0, dot);
      if (Number(down[down.length - 1]) % 2 === 0) text = down;
    }
  }
  return (neg ? "-" : "") + text;
}
function grouped(text) { // Python's "," option: thousands separators in the integer part
  const m = /^(-?)(\d+)(.*)$/.exec(text);
  return m ? m[1] + m[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + m[3] : text;
}
function signed(x, digits) { // formatting.signed
  const body = pyFixed(x, digits), text = body.startsWith("-") ? body : "+" + body;
  return Number(text) === 0 ? "±" + text.slice(1) : text;
}
function pm(v, scale = 100.0, digits = 2, unit = "%") { // formatting.pm
  if (!v || v.mean === null || Number.isNaN(v.mean)) return "–";
  const text = pyFixed(v.mean * scale, digits) + unit;
  return text + (v.n > 1 && !Number.isNaN(v.std) ? ` ± ${pyFixed(v.std * scale, digits)}` : "");
}
function costUnit(kind, maxValue) { // formatting.cost_unit
  if (kind === "params") return [1e6, "M params"];
  if (kind === "macs") return maxValue >= 1e9 ? [1e9, "G MACs"] : [1e6, "M MACs"];
  return [1.0, "ms"];
}
function fmtCost(value, kind, scale) { // formatting.fmt_cost
  const [div, unit] = scale || costUnit(kind, value);
  if (value === null || Number.isNaN(value)) return "–";
  const v = value / div, a = Math.abs(v), digits = a < 1 ? 3 : a < 10 ? 2 : a < 100 ? 1 : 0;
  return `${grouped(pyFixed(v, digits))} ${unit}`;
}
