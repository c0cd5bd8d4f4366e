import {
  formatBytes,
  formatDuration,
  formatGpu,
  formatUsage,
  levelOf,
  nextDelay,
  sparklinePoints
} from '../format';
import { eventKind } from '../types';

describe('formatBytes', () => {
  it('uses decimal units by default', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.5 kB');
    expect(formatBytes(1_234_000_000)).toBe('1.2 GB');
  });
  it('uses binary units on request', () => {
    expect(formatBytes(1024, 'binary')).toBe('1.0 KiB');
    expect(formatBytes(3 * 1024 ** 3, 'binary')).toBe('3.0 GiB');
  });
  it('says n/a for missing figures', () => {
    expect(formatBytes(null)).toBe('n/a');
    expect(formatBytes(undefined)).toBe('n/a');
    expect(formatBytes(NaN)).toBe('n/a');
  });
});

describe('formatUsage', () => {
  it('shows both figures in the unit of the limit', () => {
    expect(formatUsage(1.2e9, 4e9)).toBe('1.2 / 4.0 GB');
    expect(formatUsage(300e6, 4e9)).toBe('0.3 / 4.0 GB');
    expect(formatUsage(512 * 1024 ** 2, 2 * 1024 ** 3, 'binary')).toBe(
      '0.5 / 2.0 GiB'
    );
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

describe('levelOf', () => {
  it('applies the warn and halt fractions', () => {
    expect(levelOf(79, 100, 0.8, 0.9)).toBe('ok');
    expect(levelOf(80, 100, 0.8, 0.9)).toBe('warning');
    expect(levelOf(89.9, 100, 0.8, 0.9)).toBe('warning');
    expect(levelOf(90, 100, 0.8, 0.9)).toBe('critical');
    expect(levelOf(10, 0, 0.8, 0.9)).toBe('ok');
  });
});

describe('sparklinePoints', () => {
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
  });
});

describe('nextDelay', () => {
  it('polls at the refresh interval while visible', () => {
    expect(nextDelay(2, false, 0)).toBe(2000);
  });
  it('backs off while the page is hidden', () => {
    expect(nextDelay(2, true, 0)).toBe(12000);
    expect(nextDelay(30, true, 0)).toBe(60000);
  });
  it('doubles after each failure, up to a minute', () => {
    expect(nextDelay(2, false, 1)).toBe(4000);
    expect(nextDelay(2, false, 3)).toBe(16000);
    expect(nextDelay(2, false, 20)).toBe(60000);
  });
  it('never polls faster than twice a second', () => {
    expect(nextDelay(0, false, 0)).toBe(500);
  });
});

describe('eventKind', () => {
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
});

describe('formatGpu', () => {
  it('is null for kernels without GPU memory', () => {
    expect(formatGpu(null)).toBeNull();
    expect(formatGpu(undefined)).toBeNull();
    expect(formatGpu({ used_bytes: 0, devices: [] })).toBeNull();
  });
  it('gives a short total and one line per device', () => {
    const gpu = {
      used_bytes: 6e9,
      devices: [
        {
          index: 0,
          name: 'H100',
          used_bytes: 2e9,
          total_bytes: 80e9,
          pids: [1]
        },
        {
          index: 1,
          name: 'H100',
          used_bytes: 4e9,
          total_bytes: 80e9,
          pids: [1, 2]
        }
      ]
    };
    const text = formatGpu(gpu);
    expect(text?.short).toBe('GPU 6.0 GB');
    expect(text?.lines).toEqual([
      'GPU 0 (H100): 2.0 / 80.0 GB',
      'GPU 1 (H100): 4.0 / 80.0 GB'
    ]);
  });
});
