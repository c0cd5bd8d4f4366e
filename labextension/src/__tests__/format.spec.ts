import {
  formatBytes,
  formatDuration,
  formatPercent,
  formatRate,
  formatSeconds,
  formatSignedBytes,
  formatUsage,
  keepFigures,
  resolveUnits,
  wrapLines
} from '../format';
import { eventKind } from '../model/events';
import { pollInterval } from '../model/poll';
import { basename } from '../texts/common';
import { chartY, sparklinePoints, spreadLabels } from '../views/geometry';
import { GiB, MiB } from './fixtures';

const KiB = 1024;

describe('formatBytes', () => {
  it('uses binary units by default, as config sizes like 600M are binary', () => {
    expect(formatBytes(600 * MiB)).toBe('600 MiB');
    expect(formatBytes(2 * GiB)).toBe('2 GiB');
    expect(formatBytes(1.5 * GiB)).toBe('1.5 GiB');
    expect(formatBytes(512 * MiB)).toBe('512 MiB');
  });
  it('reads a configured limit back as configured', () => {
    for (const [bytes, text] of [
      [600 * MiB, '600 MiB'],
      [1000 * MiB, '1000 MiB'],
      [4 * GiB, '4 GiB'],
      [100 * MiB, '100 MiB'],
      [1536 * MiB, '1.5 GiB'],
      [512 * KiB, '512 KiB']
    ] as [number, string][]) {
      expect(formatBytes(bytes, 'binary')).toBe(text);
    }
  });
  it('is precise enough for small kernels', () => {
    expect(formatBytes(54 * MiB)).toBe('54 MiB');
    expect(formatBytes(5.4 * MiB)).toBe('5.4 MiB');
    expect(formatBytes(54 * MiB, 'decimal')).toBe('57 MB');
  });
  it('moves to the next unit instead of showing 1024 of one', () => {
    expect(formatBytes(1023.8 * MiB)).toBe('1 GiB');
    expect(formatBytes(1023 * MiB)).toBe('1023 MiB');
  });
  it('uses decimal units on request', () => {
    expect(formatBytes(0, 'decimal')).toBe('0 B');
    expect(formatBytes(999, 'decimal')).toBe('999 B');
    expect(formatBytes(1500, 'decimal')).toBe('1.5 kB');
    expect(formatBytes(1_234_000_000, 'decimal')).toBe('1.2 GB');
    expect(formatBytes(600 * MiB, 'decimal')).toBe('629 MB');
    expect(formatBytes(25.3e9, 'decimal')).toBe('25 GB');
  });
  it('says n/a for missing figures', () => {
    expect(formatBytes(null)).toBe('n/a');
    expect(formatBytes(undefined)).toBe('n/a');
    expect(formatBytes(NaN)).toBe('n/a');
  });
});

describe('resolveUnits', () => {
  it("follows the server's display_units unless the user chose", () => {
    expect(resolveUnits('server', 'decimal')).toBe('decimal');
    expect(resolveUnits('server', 'binary')).toBe('binary');
    expect(resolveUnits('binary', 'decimal')).toBe('binary');
    expect(resolveUnits('decimal', 'binary')).toBe('decimal');
  });
  it('is binary when nobody says', () => {
    expect(resolveUnits('server', undefined)).toBe('binary');
    expect(resolveUnits(undefined, null)).toBe('binary');
    expect(resolveUnits('server', 'nonsense')).toBe('binary');
  });
});

describe('formatUsage', () => {
  it('shares the unit when both figures have it', () => {
    expect(formatUsage(54 * MiB, 600 * MiB)).toBe('54 / 600 MiB');
    expect(formatUsage(1.5 * GiB, 4 * GiB)).toBe('1.5 / 4 GiB');
  });
  it('gives each figure its own unit otherwise (no "0.1 / 25.3 GB")', () => {
    expect(formatUsage(54 * MiB, 25.3 * GiB)).toBe('54 MiB / 25 GiB');
    expect(formatUsage(54e6, 25.3e9, 'decimal')).toBe('54 MB / 25 GB');
  });
});

describe('formatPercent and formatRate', () => {
  it('rounds', () => {
    expect(formatPercent(0.8)).toBe('80 %');
    expect(formatPercent(0.899)).toBe('90 %');
    expect(formatPercent(NaN)).toBe('n/a');
    expect(formatRate(12 * MiB)).toBe('12 MiB/s');
  });
});

describe('formatDuration', () => {
  it('reads like a person would say it', () => {
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(300)).toBe('5 min');
    expect(formatDuration(3600 * 3 + 600)).toBe('3 h 10 min');
    expect(formatDuration(7200)).toBe('2 h');
    expect(formatDuration(-1)).toBe('n/a');
  });
});

describe('sparklinePoints and chartY', () => {
  it('scales time to width and bytes to height', () => {
    const points = sparklinePoints(
      [
        [10, 0],
        [20, 50],
        [30, 100]
      ],
      100,
      10,
      100
    );
    expect(points).toBe('0.0,10.0 50.0,5.0 100.0,0.0');
  });
  it('is empty for fewer than two samples', () => {
    expect(sparklinePoints([[1, 5]], 100, 10, 100)).toBe('');
  });
  it('clips values above the maximum', () => {
    expect(
      sparklinePoints(
        [
          [0, 500],
          [1, 0]
        ],
        10,
        10,
        100
      )
    ).toBe('0.0,0.0 10.0,10.0');
    expect(chartY(80, 50, 100)).toBe(10);
    expect(chartY(500, 50, 100)).toBe(0);
  });
});

describe('spreadLabels', () => {
  it('keeps labels of close lines apart, in their order, within the chart', () => {
    // warn, stop, limit of a 64-pixel chart: 13, 7 and 1 pixels from the top.
    const ys = spreadLabels([14, 8, 2], 10, 8, 63);
    expect(ys[2]).toBe(8);
    expect(ys[1]).toBe(18);
    expect(ys[0]).toBe(28);
  });
  it('leaves labels that are apart where they are', () => {
    expect(spreadLabels([10, 40], 10, 0, 100)).toEqual([10, 40]);
  });
  it('pushes labels back up from the bottom', () => {
    expect(spreadLabels([95, 99], 10, 0, 100)).toEqual([90, 100]);
  });
});

describe('pollInterval', () => {
  it('polls at the refresh interval while visible', () => {
    expect(pollInterval(2, false)).toBe(2000);
  });
  it('is six times slower while the page is hidden, at most a minute', () => {
    expect(pollInterval(2, true)).toBe(12000);
    expect(pollInterval(30, true)).toBe(60000);
  });
  it('never polls faster than twice a second', () => {
    expect(pollInterval(0, false)).toBe(500);
  });
});

describe('eventKind and basename', () => {
  it('extracts memguard event kinds', () => {
    expect(
      eventKind(
        'https://events.jupyter.org/jupyter_memguard/kernel_terminated/v1'
      )
    ).toBe('kernel_terminated');
    expect(
      eventKind('https://events.jupyter.org/jupyter_server/kernel_actions/v1')
    ).toBeNull();
  });
  it('takes the last part of a path', () => {
    expect(basename('work/big.ipynb')).toBe('big.ipynb');
    expect(basename(null)).toBeNull();
  });
});

describe('cell figures', () => {
  it('signs a change with a real minus', () => {
    expect(formatSignedBytes(150 * MiB)).toBe('+150 MiB');
    expect(formatSignedBytes(-1.2 * GiB)).toBe('\u22121.2 GiB');
    expect(formatSignedBytes(0)).toBe('±0 B');
    expect(formatSignedBytes(null)).toBe('n/a');
  });
  it('gives short durations with their precision', () => {
    expect(formatSeconds(0.0945)).toBe('0.09 s');
    expect(formatSeconds(0.001)).toBe('< 0.01 s');
    expect(formatSeconds(4)).toBe('4.0 s');
    expect(formatSeconds(42)).toBe('42 s');
    expect(formatSeconds(300)).toBe('5 min');
    expect(formatSeconds(null)).toBe('n/a');
  });
});

describe('keepFigures', () => {
  it('keeps each figure on one line with its unit, and nothing else', () => {
    expect(
      keepFigures(
        'warns at 80 % (480 MiB) and stops at 540 MiB of 1.5 GiB in 3 s.'
      )
    ).toBe(
      'warns at 80\u00a0% (480\u00a0MiB) and stops at 540\u00a0MiB of 1.5\u00a0GiB in 3\u00a0s.'
    );
    expect(keepFigures('cell [7] ran 2 Bs and 4 steps')).toBe(
      'cell [7] ran 2 Bs and 4 steps'
    );
  });
});

describe('wrapLines', () => {
  it('breaks a paragraph at spaces, never inside a word', () => {
    expect(wrapLines('aaa bbb ccc ddd', 7)).toBe('aaa bbb\nccc ddd');
    expect(wrapLines('a verylongword b', 5)).toBe('a\nverylongword\nb');
    expect(wrapLines('one\ntwo three', 9)).toBe('one\ntwo three');
    expect(wrapLines('short', 80)).toBe('short');
  });
});
