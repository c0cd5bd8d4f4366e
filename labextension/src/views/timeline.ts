/**
 * The layout of a kernel's memory timeline (pure, jest-tested): the time window, the scales,
 * the memory curve (thinned to a few points per pixel, so hundreds or thousands of samples
 * stay cheap to draw), the limit / warn / stop lines, one span per cell (started_at to
 * ended_at, a running cell to the end of the window) in lanes so that overlapping cells do
 * not hide each other, and the time ticks.
 */
import { ICellRecord } from '../model/types';
import { cellLabel } from '../texts/cells';

export interface ITimelineInput {
  /** [time (s, server clock), bytes], oldest first. */
  history: ReadonlyArray<readonly [number, number]>;
  /** The cells, in any order. */
  cells: ReadonlyArray<ICellRecord>;
  limit: number;
  warn?: number | null;
  halt?: number | null;
  /** The end of the window (server clock); default: the newest sample or cell time. */
  end?: number | null;
  /** Plot size in pixels. */
  width: number;
  height: number;
  /** The shortest window shown, in seconds (default 20). */
  minSeconds?: number;
  /** The longest window shown, in seconds (default 15 min). */
  maxSeconds?: number;
  /** 1024 (binary units) or 1000 (decimal): the base of the round figures on the y axis. */
  base?: number;
}

export interface ISpan {
  /** Stable across refreshes: the msg_id, else the start time and execution count. */
  readonly key: string;
  readonly cell: ICellRecord;
  readonly x: number;
  readonly width: number;
  /** 0 for the first lane; cells that overlap in time go to further lanes. */
  readonly lane: number;
  /** "[7]" when it fits in the span, else null (the hover still says which cell it is). */
  readonly label: string | null;
  /** Still running at the end of the window. */
  readonly running: boolean;
}

export interface ILine {
  readonly kind: 'limit' | 'warn' | 'halt';
  readonly bytes: number;
  readonly y: number;
  /** False when the line lies above the top of the chart (the figures are far below it). */
  readonly onChart: boolean;
}

export interface ITick {
  readonly x: number;
  readonly time: number;
}

export interface ITimelineLayout {
  readonly start: number;
  readonly end: number;
  readonly width: number;
  readonly height: number;
  /** The top of the y axis, in bytes. */
  readonly top: number;
  /** Round figures for the y axis (0 first), with their y. */
  readonly yTicks: ReadonlyArray<{ bytes: number; y: number }>;
  /** SVG polyline points of the memory curve ("" without two samples in the window). */
  readonly points: string;
  readonly lines: ILine[];
  readonly spans: ISpan[];
  /** How many lanes the spans use (at least 1). */
  readonly lanes: number;
  readonly ticks: ITick[];
  /** The seconds between two ticks. */
  readonly tickStep: number;
}

/** Spans narrower than this many pixels are drawn this wide. */
export const MIN_SPAN_PX = 2;

const TICK_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600
];

/** A round figure ≥ value: 1, 2, 2.5, 5 × base^k (base 1024 → MiB/GiB-round figures). */
export function niceCeil(value: number, base = 1024): number {
  if (!(value > 0)) {
    return base ** 2;
  }
  let unit = 1;
  while (value / unit >= base) {
    unit *= base;
  }
  const scaled = value / unit;
  const decade = 10 ** Math.floor(Math.log10(scaled));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * decade >= scaled - 1e-9) {
      return step * decade * unit;
    }
  }
  return 10 * decade * unit;
}

/** A key for a cell that stays the same while it runs and after it ends. */
export function cellKey(cell: ICellRecord): string {
  return cell.msg_id || `${cell.started_at}:${cell.execution_count ?? ''}`;
}

/**
 * The samples to draw: for each pixel column at most its first, lowest, highest and last
 * sample, in time order, so the curve keeps every peak however many samples there are.
 */
export function thin(
  history: ReadonlyArray<readonly [number, number]>,
  start: number,
  end: number,
  width: number
): [number, number][] {
  const span = end - start || 1;
  const out: [number, number][] = [];
  let column = NaN;
  let bucket: (readonly [number, number])[] = [];
  const flush = (): void => {
    if (!bucket.length) {
      return;
    }
    let low = bucket[0];
    let high = bucket[0];
    for (const sample of bucket) {
      if (sample[1] < low[1]) {
        low = sample;
      }
      if (sample[1] > high[1]) {
        high = sample;
      }
    }
    const keep = [bucket[0], low, high, bucket[bucket.length - 1]];
    const seen = new Set<readonly [number, number]>();
    keep
      .filter(s => (seen.has(s) ? false : (seen.add(s), true)))
      .sort((a, b) => a[0] - b[0])
      .forEach(s => out.push([s[0], s[1]]));
    bucket = [];
  };
  // The sample just before the window, so the curve starts at its left edge.
  let before: readonly [number, number] | null = null;
  for (const sample of history) {
    const [time] = sample;
    if (time < start) {
      before = sample;
      continue;
    }
    if (time > end) {
      break;
    }
    const c = Math.floor(((time - start) / span) * width);
    if (c !== column) {
      flush();
      column = c;
    }
    bucket.push(sample);
  }
  flush();
  if (before) {
    out.unshift([before[0], before[1]]);
  }
  return out;
}

/** Lanes for spans sorted by start: each goes to the first lane that is free by its start. */
function lanesFor(
  items: ReadonlyArray<{ start: number; end: number }>
): number[] {
  const laneEnds: number[] = [];
  return items.map(item => {
    let lane = laneEnds.findIndex(end => end <= item.start);
    if (lane < 0) {
      lane = laneEnds.length;
      laneEnds.push(item.end);
    } else {
      laneEnds[lane] = item.end;
    }
    return lane;
  });
}

/** The whole layout of the timeline. */
export function timelineLayout(input: ITimelineInput): ITimelineLayout {
  const width = Math.max(1, input.width);
  const height = Math.max(1, input.height);
  const minSeconds = input.minSeconds ?? 20;
  const maxSeconds = input.maxSeconds ?? 900;
  const history = input.history;
  const cells = input.cells;
  // The end: given, else the newest thing known.
  let end = input.end ?? -Infinity;
  if (input.end === null || input.end === undefined) {
    if (history.length) {
      end = Math.max(end, history[history.length - 1][0]);
    }
    for (const cell of cells) {
      end = Math.max(end, cell.ended_at ?? cell.started_at);
    }
  }
  if (!isFinite(end)) {
    end = 0;
  }
  let start = history.length ? history[0][0] : end;
  for (const cell of cells) {
    // A cell that started a little before the first sample is still shown whole.
    if (cell.started_at < start && cell.started_at >= end - maxSeconds) {
      start = cell.started_at;
    }
  }
  start = Math.max(start, end - maxSeconds);
  if (end - start < minSeconds) {
    start = end - minSeconds;
  }
  const span = end - start;
  const x = (time: number): number =>
    ((Math.min(Math.max(time, start), end) - start) / span) * width;

  // The y axis: up to the limit when the figures come near it, else to a round figure
  // above them (a kernel using 200 MiB of a 24 GiB machine is not a flat line).
  let highest = 0;
  for (const [time, bytes] of history) {
    if (time >= start && time <= end) {
      highest = Math.max(highest, bytes);
    }
  }
  for (const cell of cells) {
    if ((cell.ended_at ?? end) >= start && cell.started_at <= end) {
      highest = Math.max(
        highest,
        cell.peak_bytes ?? 0,
        cell.memory_after_bytes ?? 0,
        cell.memory_before_bytes ?? 0
      );
    }
  }
  const limit = Math.max(0, input.limit);
  const base = input.base ?? 1024;
  const top =
    limit > 0 && highest >= 0.1 * limit
      ? Math.max(limit, highest) * 1.04
      : niceCeil(Math.max(highest * 1.2, base ** 2), base);
  const y = (bytes: number): number =>
    height - (Math.min(Math.max(bytes, 0), top) / top) * height;

  const points = thin(history, start, end, width)
    .map(([t, b]) => `${x(t).toFixed(1)},${y(b).toFixed(1)}`)
    .join(' ');
  const lines: ILine[] = [];
  const addLine = (kind: ILine['kind'], bytes: number | null | undefined) => {
    if (typeof bytes === 'number' && bytes > 0) {
      lines.push({ kind, bytes, y: y(bytes), onChart: bytes <= top });
    }
  };
  addLine('limit', limit);
  addLine('warn', input.warn);
  addLine('halt', input.halt);

  const visible = cells
    .filter(c => c.started_at <= end && (c.ended_at ?? end) >= start)
    .map(cell => ({
      cell,
      start: cell.started_at,
      end: cell.ended_at ?? end
    }))
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const lanes = lanesFor(visible);
  const spans: ISpan[] = visible.map((item, index) => {
    const x0 = x(item.start);
    const x1 = x(item.end);
    const spanWidth = Math.max(MIN_SPAN_PX, x1 - x0);
    const label = cellLabel(item.cell);
    return {
      key: cellKey(item.cell),
      cell: item.cell,
      x: Math.min(x0, width - spanWidth),
      width: spanWidth,
      lane: lanes[index],
      label: spanWidth >= 8 + 7 * label.length ? label : null,
      running: item.cell.ended_at === null || item.cell.ended_at === undefined
    };
  });

  const step =
    TICK_STEPS.find(s => span / s <= Math.max(1, width / 90)) ??
    TICK_STEPS[TICK_STEPS.length - 1];
  const ticks: ITick[] = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) {
    ticks.push({ x: x(t), time: t });
  }
  const yStep = niceCeil(top / 4, base);
  const yTicks: { bytes: number; y: number }[] = [];
  for (let bytes = 0; bytes <= top + 1e-6; bytes += yStep) {
    yTicks.push({ bytes, y: y(bytes) });
  }
  return {
    start,
    end,
    width,
    height,
    top,
    yTicks,
    points,
    lines,
    spans,
    lanes: Math.max(1, ...lanes.map(l => l + 1)),
    ticks,
    tickStep: step
  };
}
