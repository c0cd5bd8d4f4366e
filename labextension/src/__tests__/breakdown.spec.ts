import {
  breakdownBar,
  gpuBar,
  KERNEL_COLOURS,
  kernelColour
} from '../views/breakdown';
import { IBreakdown, IGpuDeviceStatus } from '../model/types';
import { GiB, MiB } from './fixtures';

function breakdown(extra: Partial<IBreakdown> = {}): IBreakdown {
  return {
    usage_bytes: 1 * GiB,
    kernels: [
      { kind: 'kernel', key: 'small', bytes: 100 * MiB, pids: [2] },
      { kind: 'kernel', key: 'big', bytes: 300 * MiB, pids: [3] }
    ],
    server: { kind: 'server', key: 'server', bytes: 100 * MiB, pids: [1] },
    terminals: [{ kind: 'terminal', key: '1', bytes: 200 * MiB, pids: [4] }],
    orphans: [],
    others: [
      {
        pid: 9,
        name: 'sshd',
        cmdline: 'sshd',
        user: 'root',
        bytes: 10 * MiB,
        terminal: null
      },
      {
        pid: 8,
        name: 'python',
        cmdline: 'python train.py',
        user: 'alice',
        bytes: 90 * MiB,
        terminal: null
      }
    ],
    others_bytes: 124 * MiB,
    others_count: 7,
    page_cache_bytes: 100 * MiB,
    shmem_bytes: 0,
    unattributed_bytes: 0,
    ...extra
  };
}

describe('breakdownBar', () => {
  it('draws every holder against the limit, largest kernel first, free space last', () => {
    const bar = breakdownBar(breakdown(), 2 * GiB);
    expect(bar.segments.map(s => s.key)).toEqual([
      'kernel:big',
      'kernel:small',
      'server',
      'terminal:1',
      'others',
      'cache',
      'unattributed',
      'free'
    ]);
    const fractions = Object.fromEntries(
      bar.segments.map(s => [s.key, s.fraction])
    );
    expect(fractions['kernel:big']).toBeCloseTo(300 / 2048);
    expect(fractions['free']).toBeCloseTo(0.5);
    // What the parts leave unexplained of the usage is the system's.
    expect(bar.segments.find(s => s.kind === 'unattributed')?.bytes).toBe(
      100 * MiB
    );
    const total = bar.segments.reduce((sum, s) => sum + s.fraction, 0);
    expect(total).toBeCloseTo(1);
  });

  it('draws the kernels a stopped server left as their own segment', () => {
    const bar = breakdownBar(
      breakdown({
        orphans: [
          { kind: 'orphan', key: 'o1', bytes: 50 * MiB, pids: [11] },
          { kind: 'orphan', key: 'o2', bytes: 150 * MiB, pids: [12] }
        ],
        usage_bytes: 1.2 * GiB
      }),
      2 * GiB
    );
    const orphans = bar.segments.find(s => s.kind === 'orphans');
    expect(orphans?.bytes).toBe(200 * MiB);
    expect(orphans?.count).toBe(2);
    expect(orphans?.holders?.map(h => h.key)).toEqual(['o2', 'o1']);
    expect(bar.segments.map(s => s.key).indexOf('orphans')).toBe(4);
  });

  it('leaves out what holds nothing and lists the other programs, largest first', () => {
    const bar = breakdownBar(breakdown(), 2 * GiB);
    expect(bar.segments.some(s => s.kind === 'shmem')).toBe(false);
    const others = bar.segments.find(s => s.kind === 'others');
    expect(others?.count).toBe(7);
    expect(others?.processes?.map(p => p.pid)).toEqual([8, 9]);
  });

  it('keeps the bar within the usage should the parts exceed it; the legend keeps the figures', () => {
    const bar = breakdownBar(breakdown({ usage_bytes: 512 * MiB }), 2 * GiB);
    const used = bar.segments
      .filter(s => s.kind !== 'free')
      .reduce((sum, s) => sum + s.fraction, 0);
    expect(used).toBeCloseTo(0.25);
    expect(bar.segments.find(s => s.key === 'kernel:big')?.bytes).toBe(
      300 * MiB
    );
    expect(bar.segments[bar.segments.length - 1].fraction).toBeCloseTo(0.75);
  });

  it('never draws more than the bar', () => {
    const bar = breakdownBar(breakdown({ usage_bytes: 3 * GiB }), 2 * GiB);
    const total = bar.segments.reduce((sum, s) => sum + s.fraction, 0);
    expect(total).toBeCloseTo(1);
    expect(bar.segments.some(s => s.kind === 'free')).toBe(false);
  });

  it('draws nothing without a limit', () => {
    expect(breakdownBar(breakdown(), 0).segments).toEqual([]);
  });

  it('gives kernels colours from the caller, else by rank', () => {
    const byRank = breakdownBar(breakdown(), 2 * GiB);
    expect(byRank.segments.slice(0, 2).map(s => s.colour)).toEqual([0, 1]);
    const fixed = breakdownBar(breakdown(), 2 * GiB, id =>
      id === 'small' ? 5 : 3
    );
    expect(fixed.segments.slice(0, 2).map(s => s.colour)).toEqual([3, 5]);
  });
});

describe('kernelColour', () => {
  it('is stable and within the palette', () => {
    const ids = ['a', 'b', '11225d71-0d83-4468-936b-fad899a817ca', ''];
    for (const id of ids) {
      const colour = kernelColour(id);
      expect(colour).toBe(kernelColour(id));
      expect(colour).toBeGreaterThanOrEqual(0);
      expect(colour).toBeLessThan(KERNEL_COLOURS);
    }
  });
});

describe('gpuBar', () => {
  const device: IGpuDeviceStatus = {
    index: 0,
    name: 'NVIDIA A100',
    used_bytes: 30 * GiB,
    total_bytes: 40 * GiB,
    kernels: [
      { kernel_id: 'a', path: 'a.ipynb', bytes: 8 * GiB },
      { kernel_id: 'b', path: 'b.ipynb', bytes: 12 * GiB }
    ]
  };

  it('shows each notebook, the other users of the device and the free memory', () => {
    const bar = gpuBar(device);
    expect(bar.segments.map(s => [s.key, s.bytes])).toEqual([
      ['kernel:b', 12 * GiB],
      ['kernel:a', 8 * GiB],
      ['others', 10 * GiB],
      ['free', 10 * GiB]
    ]);
    expect(bar.segments.reduce((sum, s) => sum + s.fraction, 0)).toBeCloseTo(1);
  });

  it('copes with a device that reports less than its kernels hold', () => {
    const bar = gpuBar({ ...device, used_bytes: 10 * GiB });
    const total = bar.segments.reduce((sum, s) => sum + s.fraction, 0);
    expect(total).toBeCloseTo(1);
    expect(bar.segments.some(s => s.kind === 'others')).toBe(false);
  });
});
