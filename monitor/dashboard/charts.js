// Small inline-SVG charts over time windows: a line chart and a stacked bar chart.
// Everything is built with DOM calls (text through textContent), and coloured by CSS
// classes (series-0, series-1, ...), so the page needs no inline style or script.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 190;
const PAD = { top: 10, right: 10, bottom: 22, left: 54 };
const MAX_X_LABELS = 6;

function svgEl(name, attrs = {}, text = undefined) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The smallest 1/2/2.5/5 x 10^n at or above value, so the y axis has round ticks.
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power + 1e-12) return step * power;
  }
  return 10 * power;
}

function timeLabel(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

// The plot's frame: grid lines, y ticks, x labels. Returns the svg and its scales.
function frame(labels, max, format, title) {
  const svg = svgEl("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart-svg",
    role: "img",
    "aria-label": title,
  });
  svg.append(svgEl("title", {}, title));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const band = plotW / Math.max(labels.length, 1);
  const x = (i) => PAD.left + band * (i + 0.5);
  const y = (v) => PAD.top + plotH - (plotH * v) / max;
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    svg.append(
      svgEl("line", { class: "gridline", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
      svgEl("text", { class: "tick", x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, format(value)),
    );
  }
  const every = Math.ceil(labels.length / MAX_X_LABELS);
  labels.forEach((label, i) => {
    if (i % every !== 0) return;
    svg.append(svgEl("text", { class: "tick", x: x(i), y: HEIGHT - 6, "text-anchor": "middle" }, timeLabel(label)));
  });
  return { svg, x, y, band, bottom: PAD.top + plotH };
}

function legend(series) {
  const box = document.createElement("div");
  box.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = `swatch series-${i}`;
    item.append(swatch, document.createTextNode(s.name));
    box.append(item);
  });
  return box;
}

// A hover target per window whose native tooltip lists every series' value.
function tooltips(chart, labels, series, format) {
  labels.forEach((label, i) => {
    const lines = series.map((s) => `${s.name}: ${s.values[i] == null ? "—" : format(s.values[i])}`);
    const hit = svgEl("rect", {
      class: "hit",
      x: chart.x(i) - chart.band / 2,
      y: PAD.top,
      width: chart.band,
      height: chart.bottom - PAD.top,
    });
    hit.append(svgEl("title", {}, [label.toLocaleString(), ...lines].join("\n")));
    chart.svg.append(hit);
  });
}

function empty(container, message) {
  const note = document.createElement("p");
  note.className = "empty";
  note.textContent = message;
  container.replaceChildren(note);
}

function maxOf(values) {
  return values.reduce((m, v) => (v != null && v > m ? v : m), 0);
}

// labels: Date per window; series: [{name, values: number|null per window}].
export function lineChart(container, { title, labels, series, format = String }) {
  if (labels.length === 0) return empty(container, "no windows in this period");
  const max = niceMax(maxOf(series.flatMap((s) => s.values)));
  const chart = frame(labels, max, format, title);
  series.forEach((s, index) => {
    let d = "";
    let pen = "M";
    s.values.forEach((v, i) => {
      if (v == null) {
        pen = "M"; // a gap: the next point starts a new segment
        return;
      }
      d += `${pen}${chart.x(i).toFixed(1)},${chart.y(v).toFixed(1)} `;
      pen = "L";
      chart.svg.append(svgEl("circle", { class: `dot series-${index}`, cx: chart.x(i), cy: chart.y(v), r: 2.5 }));
    });
    if (d) chart.svg.append(svgEl("path", { class: `line series-${index}`, d: d.trim() }));
  });
  tooltips(chart, labels, series, format);
  container.replaceChildren(chart.svg, legend(series));
}

// Bars per window, one segment per series, stacked bottom-up.
export function stackedBarChart(container, { title, labels, series, format = String }) {
  if (labels.length === 0) return empty(container, "no windows in this period");
  const totals = labels.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const max = niceMax(maxOf(totals));
  const chart = frame(labels, max, format, title);
  const width = Math.max(chart.band * 0.7, 1);
  labels.forEach((_, i) => {
    let base = 0;
    series.forEach((s, index) => {
      const v = s.values[i] || 0;
      if (v <= 0) return;
      const top = chart.y(base + v);
      chart.svg.append(svgEl("rect", {
        class: `bar series-${index}`,
        x: chart.x(i) - width / 2,
        y: top,
        width,
        height: Math.max(chart.y(base) - top, 0.5),
      }));
      base += v;
    });
  });
  tooltips(chart, labels, series, format);
  container.replaceChildren(chart.svg, legend(series));
}
