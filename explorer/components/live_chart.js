// The live θ control's chart: plotly draws what θ does not move (curves, axes, legend) and redraws
// (Plotly.react, 10-80 ms) only when the figure changes, or lazily when the pointer enters the chart
// (to refresh its hover texts); what θ moves is drawn over the plot in plain SVG at the plot's own
// axis scale (~1 ms a frame):
// - trade-off / ensemble: the diamonds at θ and the title (plotly keeps invisible diamonds for hover);
// - calibration: the populations' reliability bars (plotly's bars are hidden, class snl-own-bars; their
//   count axis is fixed to a θ-independent bound so that it never rescales while θ moves).

const SVGNS = "http://www.w3.org/2000/svg";
let overlayCount = 0;

function chartUpdate(spec, figure, out) { // plotly's data and layout at θ (for hover), and the overlay's marks
  const data = figure.data.slice(), layout = { ...figure.layout }, marks = [];
  if (out.marks) {
    spec.markers.forEach((m, i) => {
      const mark = out.marks[i], x = mark.x, y = mark.y, base = data[m.index];
      const ex = nan0(x.std / spec.div), ey = nan0(y.std * 100), X = r6(x.mean / spec.div), Y = r6(y.mean * 100);
      data[m.index] = { ...base, x: [X], y: [Y], marker: { ...base.marker, opacity: 0 },
        error_x: { ...base.error_x, array: [r6(ex)], visible: false }, error_y: { ...base.error_y, array: [r6(ey)], visible: false },
        hovertemplate: m.template.replace("{text}", mark.text) };
      marks.push({ kind: "diamond", x: X, y: Y, ex: r6(ex), ey: r6(ey), color: base.marker.color, size: base.marker.size });
    });
  }
  if (out.title) {
    layout.title = { ...layout.title, text: "" };
    marks.push({ kind: "title", text: out.title });
  }
  if (out.populations) {
    layout.yaxis2 = { ...layout.yaxis2, range: [0, out.populations.countMax * 1.05], autorange: false };
    POPULATIONS.forEach((p, i) => {
      const bins = out.populations[p].bins, bars = data[2 * i], counts = data[2 * i + 1];
      const acc = bins.map((b) => r6(b.accuracy.mean * 100)), err = bins.map((b) => r6(nan0(b.accuracy.std) * 100));
      const n = bins.map((b) => r6(b.count));
      data[2 * i] = { ...bars, y: acc, error_y: { ...bars.error_y, array: err },
        customdata: bars.customdata.map((row, j) => [row[0], row[1], r6(Number.isNaN(bins[j].confidence.mean)
          ? -1 : bins[j].confidence.mean * 100), n[j]]) };
      data[2 * i + 1] = { ...counts, y: n };
      const color = bars.marker.color;
      marks.push({ kind: "bars", yaxis: "yaxis", x: bars.x, w: bars.width, y: acc, err: bars.error_y.visible ? err : null, color });
      marks.push({ kind: "bars", yaxis: "yaxis2", x: counts.x, w: counts.width, y: n, err: null, color });
    });
  }
  return { data, layout, marks };
}

class Overlay {
  constructor(gd) {
    this.gd = gd;
    this.id = `snl-clip-${++overlayCount}`;
    this.svg = document.createElementNS(SVGNS, "svg");
    this.svg.setAttribute("class", "snl-overlay");
  }

  draw(marks) { // marks in data coordinates -> pixels of the plot as plotly last drew it
    const fl = this.gd._fullLayout, host = this.gd.querySelector(".svg-container");
    if (!fl || !fl.xaxis || !host) return;
    if (this.svg.parentNode !== host) host.appendChild(this.svg);
    this.svg.setAttribute("width", fl.width); this.svg.setAttribute("height", fl.height);
    const parts = [], clips = new Set(), xa = fl.xaxis, px = (v) => xa._offset + xa.c2p(v);
    for (const m of marks) {
      if (m.kind === "title") { // where plotly puts a title at x = 0.01: left, in the middle of the top margin
        parts.push(`<text x="${fl.width * 0.01}" y="${fl.margin.t / 2}" dominant-baseline="middle" font-size="13"
          font-family="${escapeXml(fl.font.family)}" fill="${escapeXml(fl.font.color)}">${escapeXml(m.text)}</text>`);
        continue;
      }
      const ya = fl[m.kind === "bars" ? m.yaxis : "yaxis"], py = (v) => ya._offset + ya.c2p(v);
      const clip = `${this.id}-${m.kind === "bars" ? m.yaxis : "yaxis"}`;
      if (!clips.has(clip)) {
        clips.add(clip);
        parts.push(`<clipPath id="${clip}"><rect x="${xa._offset}" y="${ya._offset}" width="${xa._length}" height="${ya._length}"/></clipPath>`);
      }
      if (m.kind === "diamond") {
        if (m.x === null || m.y === null) continue;
        const x = px(m.x), y = py(m.y), r = (m.size / 2) * 1.3, cap = 4;
        let err = "";
        if (m.ey > 0) err += `M${x - cap},${py(m.y + m.ey)}h${2 * cap}M${x},${py(m.y + m.ey)}V${py(m.y - m.ey)}M${x - cap},${py(m.y - m.ey)}h${2 * cap}`;
        if (m.ex > 0) err += `M${px(m.x - m.ex)},${y - cap}v${2 * cap}M${px(m.x - m.ex)},${y}H${px(m.x + m.ex)}M${px(m.x + m.ex)},${y - cap}v${2 * cap}`;
        parts.push(`<g clip-path="url(#${clip})">${err ? `<path d="${err}" stroke="${escapeXml(m.color)}" stroke-width="2" fill="none"/>` : ""}` +
          `<path d="M${x + r},${y}L${x},${y + r}L${x - r},${y}L${x},${y - r}Z" fill="${escapeXml(m.color)}" stroke="white" stroke-width="1"/></g>`);
      } else {
        const y0 = py(0);
        let bars = "", errs = "";
        m.y.forEach((v, j) => {
          if (v === null) return;
          const x0 = px(m.x[j] - m.w[j] / 2), x1 = px(m.x[j] + m.w[j] / 2), y = py(v), xc = (x0 + x1) / 2;
          bars += `M${x0},${y0}V${y}H${x1}V${y0}Z`;
          if (m.err && m.err[j] > 0) {
            const hi = py(v + m.err[j]), lo = py(v - m.err[j]);
            errs += `M${xc - 4},${hi}h8M${xc},${hi}V${lo}M${xc - 4},${lo}h8`;
          }
        });
        parts.push(`<g clip-path="url(#${clip})"><path d="${bars}" fill="${escapeXml(m.color)}"/>` +
          (errs ? `<path d="${errs}" stroke="#444" stroke-width="2" fill="none"/>` : "") + "</g>");
      }
    }
    this.svg.innerHTML = parts.join("");
  }
}

function escapeXml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
