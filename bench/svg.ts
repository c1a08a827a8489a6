// Two small SVG charts (grouped bars with min–max whiskers, and lines), so the bench needs no
// plotting dependency. Plain SVG 1.1 that GitHub and browsers render.

export interface Range {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface BarChart {
  readonly title: string;
  readonly yLabel: string;
  readonly groups: readonly string[];
  readonly series: readonly { readonly label: string; readonly color: string; readonly values: readonly (Range | null)[] }[];
  /** The line under the plot (by default: bars are medians over rounds, whiskers min to max). */
  readonly note?: string;
}

export interface LineChart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly x: readonly number[];
  readonly series: readonly { readonly label: string; readonly color: string; readonly dashed?: boolean; readonly values: readonly (number | null)[] }[];
}

export const PALETTE = ['#1f77b4', '#aec7e8', '#d62728', '#ff9896', '#7f7f7f', '#9467bd', '#2ca02c', '#ff7f0e'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f = (n: number): string => (Math.round(n * 10) / 10).toString();

/** A "nice" axis maximum and tick step for values up to `max`. */
function axis(max: number): { top: number; step: number } {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step || step, step };
}

function shortNumber(n: number): string {
  return n >= 10000 ? `${(n / 1000).toFixed(1)}k` : n >= 100 ? String(Math.round(n)) : f(n);
}

function frame(w: number, h: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="#ffffff"/>`,
    `<text x="${w / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function yAxis(out: string[], left: number, top: number, plotW: number, plotH: number, max: number, label: string): (v: number) => number {
  const { top: yTop, step } = axis(max);
  const y = (v: number): number => top + plotH - (v / yTop) * plotH;
  for (let v = 0; v <= yTop + step / 2; v += step) {
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${left - 6}" y="${f(y(v) + 4)}" text-anchor="end">${shortNumber(v)}</text>`);
  }
  out.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(label)}</text>`);
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#000"/>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#000"/>`);
  return y;
}

function legend(out: string[], x: number, y: number, items: readonly { label: string; color: string; dashed?: boolean }[]): void {
  items.forEach((s, i) => {
    const ly = y + i * 18;
    out.push(`<line x1="${x}" x2="${x + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="8"${s.dashed ? ' stroke-dasharray="4 2"' : ''}/>`);
    out.push(`<text x="${x + 24}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
}

export function barChart(c: BarChart): string {
  const left = 70, top = 40, plotW = 560, plotH = 300, legendW = 230;
  const out: string[] = [];
  const max = Math.max(1, ...c.series.flatMap((s) => s.values.map((v) => v?.max ?? 0)));
  const y = yAxis(out, left, top, plotW, plotH, max, c.yLabel);
  const groupW = plotW / c.groups.length;
  const barW = (groupW * 0.8) / c.series.length;
  c.groups.forEach((g, gi) => {
    const gx = left + gi * groupW + groupW * 0.1;
    out.push(`<text x="${f(left + gi * groupW + groupW / 2)}" y="${top + plotH + 18}" text-anchor="middle" font-weight="bold">${esc(g)}</text>`);
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (!v) return;
      const x = gx + si * barW;
      out.push(`<rect x="${f(x)}" y="${f(y(v.median))}" width="${f(barW - 2)}" height="${f(y(0) - y(v.median))}" fill="${s.color}"><title>${esc(`${s.label}, ${g}: ${Math.round(v.median)} (min ${Math.round(v.min)}, max ${Math.round(v.max)})`)}</title></rect>`);
      const cx = x + (barW - 2) / 2;
      out.push(`<line x1="${f(cx)}" x2="${f(cx)}" y1="${f(y(v.min))}" y2="${f(y(v.max))}" stroke="#000"/>`);
      out.push(`<text x="${f(cx)}" y="${f(y(v.max) - 4)}" text-anchor="middle" font-size="9">${shortNumber(v.median)}</text>`);
    });
  });
  legend(out, left + plotW + 20, top + 10, c.series);
  out.push(`<text x="${left}" y="${top + plotH + 38}" font-size="10" fill="#555">${esc(c.note ?? 'Bars: median over rounds; whiskers: min to max.')}</text>`);
  return frame(left + plotW + legendW, top + plotH + 50, c.title, out);
}

export function lineChart(c: LineChart): string {
  const left = 70, top = 40, plotW = 480, plotH = 280, legendW = 220;
  const out: string[] = [];
  const max = Math.max(1, ...c.series.flatMap((s) => s.values.map((v) => v ?? 0)));
  const y = yAxis(out, left, top, plotW, plotH, max, c.yLabel);
  const x = (i: number): number => left + (c.x.length === 1 ? plotW / 2 : (i / (c.x.length - 1)) * plotW);
  c.x.forEach((v, i) => out.push(`<text x="${f(x(i))}" y="${top + plotH + 18}" text-anchor="middle">${v}</text>`));
  out.push(`<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  for (const s of c.series) {
    const pts = s.values.map((v, i) => (v === null ? null : `${f(x(i))},${f(y(v))}`)).filter((p): p is string => p !== null);
    if (pts.length === 0) continue;
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const p of pts) {
      const [px, py] = p.split(',');
      out.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${s.color}"/>`);
    }
  }
  legend(out, left + plotW + 20, top + 10, c.series);
  return frame(left + plotW + legendW, top + plotH + 50, c.title, out);
}
