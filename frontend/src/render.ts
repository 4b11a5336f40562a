// The dashboard view shared by both hosts: five cards, two series charts, the ROI histogram, and
// beside every chart a table of its figures (text for every figure, not colour alone). Everything is
// built with DOM calls and textContent, never from HTML strings, so no figure or label can inject
// markup. Charts are SVG drawn at the width of their box and redrawn when it changes.

import { bucketLabel, cardValue, change, compact, number, POPULATION } from "./format";
import { CARD_KEYS, type ActivityPoint, type Dashboard, type Meta, type Period, type VolumePoint } from "./types";

const SVG = "http://www.w3.org/2000/svg";

type Attributes = Record<string, string | number>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function svg(tag: string, attributes: Attributes = {}, ...children: Node[]): SVGElement {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function title(text: string): SVGElement {
  const node = svg("title");
  node.textContent = text;
  return node;
}

/** What a host knows besides the dashboard itself. */
export interface Extra {
  dataVersion?: number;
  meta?: Meta;
}

const PERIOD_WORDS: Record<Period, string> = { "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days" };

/** A view bound to one container; `show` replaces what it shows. */
export class DashboardView {
  private readonly root: HTMLElement;
  private data: Dashboard | null = null;
  private drawnWidth = 0;

  constructor(root: HTMLElement) {
    this.root = root;
    new ResizeObserver(() => {
      if (this.data !== null && this.width() !== this.drawnWidth) this.drawCharts(this.data);
    }).observe(root);
  }

  show(data: Dashboard, extra: Extra = {}): void {
    this.data = data;
    const m = data.metrics;
    const context = el("p", { class: "context", "data-filter": m.filter, "data-period": m.period, "data-timestamp": m.timestamp });
    context.append(el("span", {}, `${POPULATION[m.filter] ?? m.filter}, ${PERIOD_WORDS[m.period]}`));
    // With `meta` (the MCP view) the instant and the version are listed with the windows below.
    if (extra.meta === undefined) context.append(el("span", {}, "as of ", el("time", { datetime: m.timestamp, class: "timestamp" }, m.timestamp)));
    if (extra.dataVersion !== undefined) {
      context.setAttribute("data-version", String(extra.dataVersion));
      if (extra.meta === undefined) context.append(el("span", {}, `data version ${extra.dataVersion}`));
    }
    const parts: Node[] = [context];
    if (extra.meta !== undefined) parts.push(metaBlock(extra.meta));
    parts.push(cards(data));
    parts.push(
      el(
        "div",
        { class: "charts" },
        figure("volume", "Trading volume (USDC)", volumeLegend(), volumeTable(data.volume_over_time, m.period)),
        figure("activity", "Active users", activityLegend(), activityTable(data.user_activity, m.period)),
        figure("roi", "ROI distribution (active users with capital)", null, roiTable(data)),
      ),
    );
    this.root.replaceChildren(...parts);
    this.root.setAttribute("aria-busy", "false");
    this.drawCharts(data);
  }

  /** Show a message instead of figures (an error from the host or the server). */
  message(text: string): void {
    this.data = null;
    this.root.replaceChildren(el("p", { class: "notice", role: "alert" }, text));
  }

  private width(): number {
    const plot = this.root.querySelector<HTMLElement>(".plot");
    return Math.max(240, Math.floor(plot?.clientWidth ?? 0));
  }

  private drawCharts(data: Dashboard): void {
    const width = this.width();
    this.drawnWidth = width;
    const period = data.metrics.period;
    this.root.querySelector('[data-chart="volume"] .plot')?.replaceChildren(volumeChart(data.volume_over_time, period, width));
    this.root.querySelector('[data-chart="activity"] .plot')?.replaceChildren(activityChart(data.user_activity, period, width));
    this.root.querySelector('[data-chart="roi"] .plot')?.replaceChildren(roiBars(data));
  }
}

function metaBlock(meta: Meta): HTMLElement {
  const row = (name: string, value: string) => [el("dt", {}, name), el("dd", {}, value)];
  return el(
    "dl",
    { class: "meta" },
    ...row("as of", meta.as_of),
    ...row("window", `${meta.window.start} to ${meta.window.end}`),
    ...row("compared with", `${meta.previous_window.start} to ${meta.previous_window.end}`),
    ...row("data version", String(meta.data_version)),
  );
}

function cards(data: Dashboard): HTMLElement {
  const period = data.metrics.period;
  const list = el("ul", { class: "cards" });
  for (const key of CARD_KEYS) {
    const card = data.metrics[key];
    const value = cardValue(card);
    const delta = change(card.change, period);
    const changeLine = el("p", { class: `change ${delta.direction}`, title: delta.words });
    if (delta.arrow) changeLine.append(el("span", { class: "arrow", "aria-hidden": "true" }, delta.arrow));
    changeLine.append(el("span", { class: "change-text" }, delta.text), el("span", { class: "sr-only" }, ` (${delta.words})`));
    const valueLine = el("p", { class: "value" }, el("span", { class: "number" }, value.number));
    if (value.suffix) valueLine.append(el("span", { class: "suffix" }, value.suffix === "%" ? "%" : ` ${value.suffix}`));
    list.append(el("li", { class: "card", "data-metric": key }, el("h2", { class: "label" }, card.label), valueLine, changeLine));
  }
  return list;
}

function figure(name: string, caption: string, legend: HTMLElement | null, table: HTMLElement): HTMLElement {
  const head = el("figcaption", {}, el("h2", {}, caption));
  if (legend) head.append(legend);
  return el(
    "figure",
    { class: "chart", "data-chart": name },
    head,
    el("div", { class: "plot", "aria-hidden": "true" }),
    el("details", {}, el("summary", {}, "Figures as a table"), table),
  );
}

function legendItem(kind: string, text: string): HTMLElement {
  return el("li", {}, el("span", { class: `swatch ${kind}`, "aria-hidden": "true" }), text);
}

function volumeLegend(): HTMLElement {
  return el("ul", { class: "legend" }, legendItem("humans", "humans"), legendItem("agents", "agents"), legendItem("total", "total (line)"));
}

function activityLegend(): HTMLElement {
  return el("ul", { class: "legend" }, legendItem("humans", "humans"), legendItem("agents", "agents"), legendItem("total", "total"));
}

function table(headers: string[], rows: string[][], numericFrom = 1): HTMLElement {
  const head = el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)));
  const body = rows.map((cells) =>
    el("tr", {}, ...cells.map((cell, i) => (i === 0 ? el("th", { scope: "row" }, cell) : el("td", { class: i >= numericFrom ? "num" : "" }, cell)))),
  );
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function volumeTable(points: VolumePoint[], period: Period): HTMLElement {
  return table(
    ["bucket start (UTC)", "humans", "agents", "total", "trades"],
    points.map((p) => [bucketLabel(p.timestamp, period), number(p.human_volume, 2), number(p.bot_volume, 2), number(p.total_volume, 2), number(p.trade_count, 0)]),
  );
}

function activityTable(points: ActivityPoint[], period: Period): HTMLElement {
  return table(
    ["bucket start (UTC)", "humans", "agents", "total"],
    points.map((p) => [bucketLabel(p.timestamp, period), number(p.human_users, 0), number(p.bot_users, 0), number(p.total_users, 0)]),
  );
}

function roiTable(data: Dashboard): HTMLElement {
  return table(["ROI range", "users"], data.profitability_distribution.map((b) => [b.range, number(b.count, 0)]));
}

/** A round upper bound for an axis: 11408 -> 12000. */
function niceMax(value: number): number {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

const HEIGHT = 190;
const PAD = { top: 10, right: 8, bottom: 24, left: 44 };

interface Frame {
  plot: SVGElement;
  x: (i: number) => number;
  y: (v: number) => number;
  step: number;
}

function frame(width: number, count: number, max: number, labels: string[], label: (v: number) => string): Frame {
  const inner = width - PAD.left - PAD.right;
  const step = inner / Math.max(1, count);
  const top = niceMax(max);
  const y = (v: number) => PAD.top + (HEIGHT - PAD.top - PAD.bottom) * (1 - v / top);
  const x = (i: number) => PAD.left + i * step;
  const plot = svg("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, class: "svg-chart", focusable: "false" });
  for (const v of [0, top / 2, top]) {
    plot.append(svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    const text = svg("text", { x: PAD.left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" });
    text.textContent = label(v);
    plot.append(text);
  }
  const picks = count <= 1 ? [0] : [0, Math.floor((count - 1) / 2), count - 1];
  for (const i of picks) {
    const anchor = i === 0 ? "start" : i === count - 1 ? "end" : "middle";
    const at = i === 0 ? x(0) : i === count - 1 ? x(count) : x(i) + step / 2;
    const text = svg("text", { x: at, y: HEIGHT - 6, class: "axis", "text-anchor": anchor });
    text.textContent = labels[i] ?? "";
    plot.append(text);
  }
  return { plot, x, y, step };
}

function volumeChart(points: VolumePoint[], period: Period, width: number): SVGElement {
  const max = Math.max(0, ...points.map((p) => p.total_volume));
  const f = frame(width, points.length, max, points.map((p) => bucketLabel(p.timestamp, period)), compact);
  const gap = Math.min(3, f.step * 0.2);
  const line: string[] = [];
  points.forEach((p, i) => {
    const x = f.x(i) + gap / 2;
    const w = Math.max(1, f.step - gap);
    const group = svg(
      "g",
      {},
      title(`${bucketLabel(p.timestamp, period)} UTC: total ${number(p.total_volume, 2)} USDC (humans ${number(p.human_volume, 2)}, agents ${number(p.bot_volume, 2)}), ${number(p.trade_count, 0)} trades`),
    );
    const humansTop = f.y(p.human_volume);
    group.append(svg("rect", { x, y: humansTop, width: w, height: Math.max(0, f.y(0) - humansTop), class: "bar humans" }));
    const agentsTop = f.y(p.total_volume);
    group.append(svg("rect", { x, y: agentsTop, width: w, height: Math.max(0, humansTop - agentsTop), class: "bar agents" }));
    f.plot.append(group);
    line.push(`${(f.x(i) + f.step / 2).toFixed(1)},${f.y(p.total_volume).toFixed(1)}`);
  });
  if (line.length > 1) f.plot.append(svg("polyline", { points: line.join(" "), class: "line total" }));
  return f.plot;
}

function activityChart(points: ActivityPoint[], period: Period, width: number): SVGElement {
  const max = Math.max(0, ...points.map((p) => p.total_users));
  const f = frame(width, points.length, max, points.map((p) => bucketLabel(p.timestamp, period)), (v) => number(v, 0));
  const series: [string, (p: ActivityPoint) => number][] = [
    ["total", (p) => p.total_users],
    ["humans", (p) => p.human_users],
    ["agents", (p) => p.bot_users],
  ];
  for (const [kind, value] of series) {
    const coords = points.map((p, i) => `${(f.x(i) + f.step / 2).toFixed(1)},${f.y(value(p)).toFixed(1)}`);
    f.plot.append(svg("polyline", { points: coords.join(" "), class: `line ${kind}` }));
  }
  points.forEach((p, i) => {
    const hit = svg("rect", { x: f.x(i), y: PAD.top, width: f.step, height: HEIGHT - PAD.top - PAD.bottom, class: "hit" });
    hit.append(title(`${bucketLabel(p.timestamp, period)} UTC: ${p.total_users} users (humans ${p.human_users}, agents ${p.bot_users})`));
    f.plot.append(hit);
  });
  return f.plot;
}

function roiBars(data: Dashboard): HTMLElement {
  const max = Math.max(1, ...data.profitability_distribution.map((b) => b.count));
  const rows = data.profitability_distribution.map((b) => {
    const bar = el("span", { class: `bar ${b.range.startsWith("-") || b.range.startsWith("<") ? "loss" : "gain"}` });
    bar.style.width = `${((100 * b.count) / max).toFixed(2)}%`;
    return el("li", {}, el("span", { class: "range" }, b.range), el("span", { class: "track" }, bar), el("span", { class: "count" }, number(b.count, 0)));
  });
  return el("ol", { class: "histogram" }, ...rows);
}
