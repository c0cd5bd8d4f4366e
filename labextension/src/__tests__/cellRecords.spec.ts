import {
  runRange,
  badgeThreshold,
  cellChange,
  DEFAULT_BADGE_SETTINGS,
  ICellRef,
  isNotable,
  matchRecords
} from '../views/cellRecords';
import { cellRecord, GiB, MiB } from './fixtures';

describe('badgeThreshold', () => {
  it('is the smaller of the MiB and the percent rules', () => {
    expect(badgeThreshold(600 * MiB, DEFAULT_BADGE_SETTINGS)).toBe(30 * MiB);
    expect(badgeThreshold(24 * GiB, DEFAULT_BADGE_SETTINGS)).toBe(100 * MiB);
  });
  it('uses the MiB rule alone without a limit', () => {
    expect(badgeThreshold(null, DEFAULT_BADGE_SETTINGS)).toBe(100 * MiB);
  });
  it('turns a rule off at 0', () => {
    const s = { ...DEFAULT_BADGE_SETTINGS, thresholdMiB: 0 };
    expect(badgeThreshold(4 * GiB, s)).toBeCloseTo(0.05 * 4 * GiB);
    expect(badgeThreshold(null, s)).toBe(Infinity);
    expect(badgeThreshold(4 * GiB, { ...s, thresholdPercent: 0 })).toBe(0);
  });
});

describe('isNotable', () => {
  const s = DEFAULT_BADGE_SETTINGS;
  it('counts what a cell kept, or its own peak above where it started', () => {
    expect(cellChange(cellRecord({ delta_bytes: 150 * MiB }))).toBe(150 * MiB);
    expect(
      cellChange(
        cellRecord({
          delta_bytes: 0,
          // The kernel's peak is not the cell's: only its own rise counts.
          peak_bytes: 4 * GiB,
          peak_above_start_bytes: 300 * MiB,
          memory_before_bytes: 100 * MiB
        })
      )
    ).toBe(300 * MiB);
    expect(cellChange(cellRecord({ delta_bytes: -200 * MiB }))).toBe(200 * MiB);
  });
  it('badges a cell that kept 150 MB under a 4 GiB limit, not one that kept 5 MB', () => {
    expect(isNotable(cellRecord({ delta_bytes: 150 * MiB }), 4 * GiB, s)).toBe(
      true
    );
    expect(isNotable(cellRecord({ delta_bytes: 5 * MiB }), 4 * GiB, s)).toBe(
      false
    );
  });
  it('uses the percent of a small limit', () => {
    expect(isNotable(cellRecord({ delta_bytes: 40 * MiB }), 600 * MiB, s)).toBe(
      true
    );
    expect(isNotable(cellRecord({ delta_bytes: 40 * MiB }), 4 * GiB, s)).toBe(
      false
    );
  });
  it('badges no running cell, and nothing when badges are off', () => {
    const big = cellRecord({ delta_bytes: GiB });
    expect(isNotable({ ...big, status: 'running' }, 4 * GiB, s)).toBe(false);
    expect(isNotable(big, 4 * GiB, { ...s, enabled: false })).toBe(false);
  });
  it('badges every change when both rules are off, but not a cell that changed nothing', () => {
    const all = { enabled: true, thresholdMiB: 0, thresholdPercent: 0 };
    expect(isNotable(cellRecord({ delta_bytes: 4096 }), 4 * GiB, all)).toBe(
      true
    );
    expect(isNotable(cellRecord(), 4 * GiB, all)).toBe(false);
  });
});

describe('matchRecords', () => {
  const cell = (
    id: string,
    msgId: string | null,
    count: number | null,
    source: string
  ): ICellRef => ({ id, msgId, executionCount: count, source });

  it('matches by msg_id first', () => {
    const records = [
      cellRecord({ msg_id: 'm2', execution_count: 2, first_line: 'y = 2' }),
      cellRecord({ msg_id: 'm1', execution_count: 1 })
    ];
    const matched = matchRecords(
      [cell('a', 'm1', 1, 'x = 1'), cell('b', 'm2', 2, 'edited since')],
      records
    );
    expect(matched.get('a')?.msg_id).toBe('m1');
    // An edited cell keeps its record through the msg_id.
    expect(matched.get('b')?.msg_id).toBe('m2');
  });

  it('gives a cell whose msg_id has no record nothing', () => {
    const matched = matchRecords(
      [cell('a', 'old', 1, 'x = 1')],
      [cellRecord({ msg_id: 'm1', execution_count: 1 })]
    );
    expect(matched.size).toBe(0);
  });

  it('falls back on the execution count and the first line (after a reload)', () => {
    const records = [
      cellRecord({
        msg_id: 'm3',
        execution_count: 3,
        first_line: 'df = load()',
        started_at: 300
      }),
      cellRecord({ msg_id: 'm1', execution_count: 1, first_line: 'x = 1' })
    ];
    const matched = matchRecords(
      [
        cell('a', null, 1, '\n  x = 1\nprint(x)'),
        cell('b', null, 3, 'df = load()  # big'),
        cell('c', null, 3, 'other = 1')
      ],
      records
    );
    expect(matched.get('a')?.msg_id).toBe('m1');
    expect(matched.get('b')?.msg_id).toBe('m3');
    expect(matched.has('c')).toBe(false);
  });

  it('never gives a record claimed by msg_id to another cell', () => {
    const records = [cellRecord({ msg_id: 'm5', execution_count: 5 })];
    const matched = matchRecords(
      [cell('new', 'm5', 5, 'x = 1'), cell('stale', null, 5, 'x = 1')],
      records
    );
    expect(matched.get('new')?.msg_id).toBe('m5');
    expect(matched.has('stale')).toBe(false);
  });
});

describe('runRange (restart and run up to the cell that failed)', () => {
  const code = (count: number | null) => ({
    type: 'code',
    executionCount: count
  });
  const md = { type: 'markdown', executionCount: null };

  it('runs every cell above the failing one, named by their prompts', () => {
    const cells = [
      md,
      code(1),
      code(2),
      md,
      code(3),
      code(4),
      code(5),
      code(6),
      code(7)
    ];
    expect(runRange(cells, 8)).toEqual({
      lastIndex: 7,
      count: 6,
      first: 1,
      last: 6
    });
  });

  it('offers a plain restart when the failing cell is the first code cell, or unknown', () => {
    expect(runRange([md, code(1), code(2)], 1)).toBeNull();
    expect(runRange([code(1)], 0)).toBeNull();
    expect(runRange([code(1), code(2)], -1)).toBeNull();
    expect(runRange([code(1), code(2)], 5)).toBeNull();
  });

  it('does not name the range by prompts that are missing or out of order', () => {
    expect(runRange([code(null), code(2), code(3)], 2)).toEqual({
      lastIndex: 1,
      count: 2,
      first: null,
      last: null
    });
    expect(runRange([code(5), code(2), code(9)], 2)).toMatchObject({
      first: null,
      last: null,
      count: 2
    });
    expect(runRange([code(4), code(9)], 1)).toEqual({
      lastIndex: 0,
      count: 1,
      first: 4,
      last: 4
    });
  });
});
