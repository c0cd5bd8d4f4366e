import { ICellRecord } from '../model/types';
import { cellLabel } from '../texts/cells';
import {
  cellKey,
  MIN_SPAN_PX,
  niceCeil,
  thin,
  timelineLayout
} from '../views/timeline';
import { cellRecord, GiB, MiB } from './fixtures';

function cell(
  count: number | null,
  start: number,
  end: number | null,
  extra: Partial<ICellRecord> = {}
): ICellRecord {
  return cellRecord({
    msg_id: `m${count}`,
    execution_count: count,
    code: 'x',
    first_line: 'x',
    started_at: start,
    ended_at: end,
    status: end === null ? 'running' : 'ok',
    memory_after_bytes: 200 * MiB,
    peak_bytes: 250 * MiB,
    delta_bytes: 100 * MiB,
    duration_s: end === null ? null : end - start,
    ...extra
  });
}

const history: [number, number][] = [];
for (let t = 1000; t <= 1120; t += 2) {
  history.push([t, 100 * MiB + (t - 1000) * MiB]);
}

describe('timelineLayout', () => {
  const base = {
    history,
    limit: 600 * MiB,
    warn: 480 * MiB,
    halt: 540 * MiB,
    width: 600,
    height: 100
  };

  it('lays out one span per cell in time, labelled with its execution count', () => {
    const layout = timelineLayout({
      ...base,
      cells: [cell(2, 1060, 1090), cell(1, 1000, 1030)]
    });
    expect(layout.start).toBe(1000);
    expect(layout.end).toBe(1120);
    expect(layout.spans.map(s => s.label)).toEqual(['[1]', '[2]']);
    const [first, second] = layout.spans;
    expect(first.x).toBeCloseTo(0);
    expect(first.width).toBeCloseTo(150);
    expect(second.x).toBeCloseTo(300);
    expect(second.width).toBeCloseTo(150);
    expect(layout.lanes).toBe(1);
    expect(first.lane).toBe(0);
    expect(second.lane).toBe(0);
  });

  it('draws a running cell to the end of the window', () => {
    const layout = timelineLayout({ ...base, cells: [cell(3, 1090, null)] });
    const [span] = layout.spans;
    expect(span.running).toBe(true);
    expect(span.x + span.width).toBeCloseTo(600);
  });

  it('puts overlapping cells in lanes of their own', () => {
    const layout = timelineLayout({
      ...base,
      cells: [
        cell(1, 1000, 1050),
        cell(2, 1040, 1060, { overlapped: true }),
        cell(3, 1055, 1070)
      ]
    });
    expect(layout.spans.map(s => s.lane)).toEqual([0, 1, 0]);
    expect(layout.lanes).toBe(2);
  });

  it('keeps tiny cells visible, without a label that would not fit', () => {
    const layout = timelineLayout({
      ...base,
      cells: [cell(12, 1010, 1010.05)]
    });
    const [span] = layout.spans;
    expect(span.width).toBe(MIN_SPAN_PX);
    expect(span.label).toBeNull();
  });

  it('leaves out cells outside the window and clips those across its edge', () => {
    const layout = timelineLayout({
      ...base,
      cells: [cell(1, 500, 600), cell(2, 990, 1010)],
      maxSeconds: 130
    });
    expect(layout.spans.map(s => s.cell.execution_count)).toEqual([2]);
    expect(layout.start).toBe(990);
    expect(layout.spans[0].x).toBeCloseTo(0);
  });

  it('ends a stopped kernel’s window where it ended', () => {
    const layout = timelineLayout({
      ...base,
      cells: [cell(4, 1100, null)],
      end: 1110
    });
    expect(layout.end).toBe(1110);
    const [span] = layout.spans;
    expect(span.x + span.width).toBeCloseTo(600);
  });

  it('scales to the limit near it, with the warn and stop lines on the chart', () => {
    const layout = timelineLayout({ ...base, cells: [] });
    expect(layout.top).toBeCloseTo(600 * MiB * 1.04);
    expect(layout.lines.map(l => [l.kind, l.onChart])).toEqual([
      ['limit', true],
      ['warn', true],
      ['halt', true]
    ]);
    const warn = layout.lines.find(l => l.kind === 'warn');
    expect(warn?.y).toBeCloseTo(100 - (480 / (600 * 1.04)) * 100);
  });

  it('marks round figures on the y axis', () => {
    const layout = timelineLayout({ ...base, cells: [] });
    expect(layout.yTicks.map(t => t.bytes / MiB)).toEqual([0, 200, 400, 600]);
    expect(layout.yTicks[0].y).toBe(100);
  });

  it('zooms to the figures when the limit is far above them', () => {
    const layout = timelineLayout({
      ...base,
      limit: 24 * GiB,
      warn: 19 * GiB,
      halt: 21 * GiB,
      cells: []
    });
    expect(layout.top).toBeLessThan(GiB);
    expect(layout.top).toBeGreaterThanOrEqual(220 * MiB);
    expect(layout.lines.every(l => !l.onChart)).toBe(true);
  });

  it('shows at least the minimum window for a young kernel', () => {
    const layout = timelineLayout({
      ...base,
      history: [
        [2000, 50 * MiB],
        [2001, 60 * MiB]
      ],
      cells: []
    });
    expect(layout.end - layout.start).toBe(20);
  });

  it('stays small with thousands of samples', () => {
    const many: [number, number][] = [];
    for (let i = 0; i < 5000; i++) {
      many.push([i * 0.05, (i % 97) * MiB]);
    }
    const layout = timelineLayout({
      ...base,
      history: many,
      cells: [],
      width: 300
    });
    const points = layout.points.split(' ');
    expect(points.length).toBeLessThanOrEqual(4 * 301 + 1);
    expect(points.length).toBeGreaterThan(300);
  });

  it('has ticks at round times inside the window', () => {
    const layout = timelineLayout({ ...base, cells: [] });
    expect(layout.tickStep).toBeGreaterThanOrEqual(15);
    for (const tick of layout.ticks) {
      expect(tick.time % layout.tickStep).toBe(0);
      expect(tick.x).toBeGreaterThanOrEqual(0);
      expect(tick.x).toBeLessThanOrEqual(600);
    }
  });
});

describe('thin', () => {
  it('keeps the peaks of each pixel column in time order', () => {
    const samples: [number, number][] = [
      [0, 5],
      [0.1, 50],
      [0.2, 1],
      [0.3, 7],
      [10, 3]
    ];
    const out = thin(samples, 0, 10, 10);
    expect(out).toEqual([
      [0, 5],
      [0.1, 50],
      [0.2, 1],
      [0.3, 7],
      [10, 3]
    ]);
    const fewer = thin(
      [
        [0, 5],
        [0.1, 50],
        [0.15, 20],
        [0.2, 1],
        [0.3, 7]
      ],
      0,
      10,
      10
    );
    expect(fewer.map(s => s[1])).toEqual([5, 50, 1, 7]);
  });
  it('starts with the sample just before the window', () => {
    expect(
      thin(
        [
          [0, 1],
          [5, 2],
          [6, 3]
        ],
        4,
        10,
        10
      )[0]
    ).toEqual([0, 1]);
  });
});

describe('helpers', () => {
  it('rounds axis tops to round sizes', () => {
    expect(niceCeil(180 * MiB)).toBe(200 * MiB);
    expect(niceCeil(2.2 * GiB)).toBe(2.5 * GiB);
    expect(niceCeil(900 * MiB)).toBe(1000 * MiB);
    expect(niceCeil(1500 * 1000 ** 2, 1000)).toBe(2 * 1000 ** 3);
  });
  it('labels and keys cells', () => {
    expect(cellLabel({ execution_count: 7 })).toBe('[7]');
    expect(cellLabel({ execution_count: null })).toBe('[ ]');
    expect(cellKey(cell(1, 5, 6))).toBe('m1');
    expect(cellKey(cell(null, 5, 6, { msg_id: null }))).toBe('5:');
  });
});
