/**
 * The texts of who holds the memory, pressure from outside the kernels, the GPU, the cell
 * badges and the timeline.
 */
import {
  badgeText,
  badgeTitle,
  cellFigures,
  cellStatusText,
  gpuDeviceText,
  gpuPressureNotice,
  gpuStopConfirmation,
  gpuStoppedNotice,
  holderList,
  kernelLabel,
  MAX_NOTICE_LENGTH,
  memoryMethodText,
  noticeFor,
  otherProcessText,
  overcountedText,
  plainTrans,
  pressureNotice,
  pressureReliefNotice,
  segmentHint,
  segmentLabel,
  stoppableHolders,
  timelineLinesText
} from '../messages';
import { newIncident } from '../incidents';
import { breakdownBar, SegmentKind } from '../breakdown';
import {
  ICellRecord,
  IGpuPressure,
  IKernelMemory,
  IOtherProcess
} from '../types';
import { cellRecord, ctx, GiB, MiB } from './fixtures';

function memory(extra: Partial<IKernelMemory> = {}): IKernelMemory {
  return {
    used_bytes: 420 * MiB,
    method: 'pss',
    rss_bytes: 2.3 * GiB,
    peak_bytes: 2.3 * GiB,
    growth_bytes_per_s: 0,
    children: [2, 3, 4, 5],
    pss_bytes: null,
    uss_bytes: null,
    sampled_at: 1,
    ...extra
  };
}

/** A program outside the notebooks, started in terminal 1. */
const trainPy: IOtherProcess = {
  pid: 4242,
  name: 'python',
  cmdline: 'python train.py',
  user: 'alice',
  bytes: 1.6 * GiB,
  terminal: '1'
};

function cell(extra: Partial<ICellRecord> = {}): ICellRecord {
  return cellRecord({
    msg_id: 'm7',
    execution_count: 7,
    code: 'df = pd.read_csv("big.csv")\ndf.head()',
    first_line: 'df = pd.read_csv("big.csv")',
    ended_at: 104,
    memory_before_bytes: 0.5 * GiB,
    memory_after_bytes: 4.1 * GiB,
    peak_bytes: 4.1 * GiB,
    delta_bytes: 3.6 * GiB,
    duration_s: 4,
    ...extra
  });
}

describe('how memory is counted', () => {
  it('says when a kernel was measured as PSS', () => {
    expect(memoryMethodText(memory(), ctx)).toBe(
      'Measured as PSS: shared pages counted once (its processes’ RSS adds up to 2.3 GiB).'
    );
    expect(memoryMethodText(memory({ method: 'rss' }), ctx)).toBeNull();
    expect(memoryMethodText(memory({ method: 'usage_request' }), ctx)).toMatch(
      /kernel reports/
    );
  });
});

describe('who holds the memory', () => {
  it('names every part of the bar in plain words', () => {
    const names: [SegmentKind, string | null, string][] = [
      ['kernel', 'k1', 'big.ipynb'],
      ['server', null, 'Jupyter server'],
      ['terminal', '1', 'Terminal 1'],
      ['others', null, 'Other programs'],
      ['cache', null, 'File cache'],
      ['shmem', null, 'Shared memory'],
      ['unattributed', null, 'Other system memory'],
      ['free', null, 'Free']
    ];
    for (const [kind, id, text] of names) {
      expect(
        segmentLabel({ kind, id }, plainTrans, kid =>
          kid === 'k1' ? 'big.ipynb' : '?'
        )
      ).toBe(text);
      expect(segmentHint({ kind }, plainTrans).length).toBeGreaterThan(10);
    }
  });

  it('names a kernel by its notebook, else a short id', () => {
    expect(kernelLabel('work/big.ipynb', 'abcdef123456', plainTrans)).toBe(
      'big.ipynb'
    );
    expect(kernelLabel(null, 'abcdef123456', plainTrans)).toBe(
      'Kernel abcdef12'
    );
  });

  it('lists another program with its command, pid, user and size', () => {
    expect(otherProcessText(trainPy, ctx)).toBe(
      '`python train.py` — pid 4242, alice, terminal 1: 1.6 GiB'
    );
    const long = otherProcessText(
      {
        pid: 1,
        name: 'x',
        cmdline: 'x'.repeat(200),
        user: 'root',
        bytes: MiB
      },
      ctx,
      40
    );
    expect(long).toContain('x'.repeat(39) + '…');
  });

  it('explains parts that add up to more than the usage', () => {
    const base = {
      scope: 'host',
      scanned_at: 1,
      kernels: [],
      server: { kind: 'server', key: 'server', bytes: 900 * MiB, pids: [1] },
      terminals: [],
      others: [],
      others_bytes: 0,
      others_count: 0,
      page_cache_bytes: 0,
      shmem_bytes: 0,
      unattributed_bytes: 0,
      overcounted_bytes: 0
    };
    const over = breakdownBar({ ...base, usage_bytes: 500 * MiB }, GiB);
    expect(overcountedText(over, ctx)).toMatch(/^The parts add up to 400 MiB/);
    const exact = breakdownBar({ ...base, usage_bytes: 900 * MiB }, GiB);
    expect(overcountedText(exact, ctx)).toBeNull();
  });

  it('describes a GPU', () => {
    expect(
      gpuDeviceText(
        {
          index: 0,
          name: 'NVIDIA A100',
          used_bytes: 30 * GiB,
          total_bytes: 40 * GiB,
          free_bytes: 10 * GiB,
          kernels: []
        },
        ctx
      )
    ).toBe('GPU 0 (NVIDIA A100): 30 GiB of 40 GiB (75 %) used');
  });
});

describe('pressure from outside the kernels', () => {
  const message =
    'A process outside your notebooks, `python train.py` (pid 4242, terminal 1), uses 1.6 GiB of the 2 GiB limit';
  const culprit = trainPy;

  it('shows the server’s words, which name the process and its size', () => {
    const view = pressureNotice(
      { usage_bytes: 1.9 * GiB, limit_bytes: 2 * GiB, message, culprit },
      ctx
    );
    // The server's words, with a full stop.
    expect(view.message).toContain(`${message}.`);
    expect(view.type).toBe('warning');
    expect(view.actions).toEqual(['panel']);
    // It stays until memory is back (the notice says so then).
    expect(view.autoClose).toBe(false);
  });

  it('names the process itself when the server’s words are too long', () => {
    const view = pressureNotice(
      {
        usage_bytes: 1.9 * GiB,
        limit_bytes: 2 * GiB,
        message: `A process outside your notebooks, \`python ${'very/long/path/'.repeat(10)}train.py\` (pid 4242), uses 1.6 GiB of the 2 GiB limit`,
        culprit: {
          ...culprit,
          cmdline: `python ${'very/long/path/'.repeat(10)}train.py`
        }
      },
      ctx
    );
    expect(view.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
    expect(view.message).toContain('pid 4242, terminal 1');
    expect(view.message).toContain('1.6 GiB of the 2 GiB limit');
    expect(view.message).toContain('`python very/long');
  });

  it('says when memory is no longer short', () => {
    const view = pressureReliefNotice(
      { usage_bytes: 1 * GiB, limit_bytes: 2 * GiB },
      ctx
    );
    expect(view.message).toBe(
      'Memory is no longer short: this server uses 1 GiB of 2 GiB.'
    );
    expect(view.type).toBe('info');
    expect(view.autoClose).toBeGreaterThan(0);
  });
});

describe('GPU pressure', () => {
  const data: IGpuPressure = {
    kernel_id: 'mine',
    path: 'work/train.ipynb',
    message:
      'GPU 0 (NVIDIA A100) is full: a.ipynb (12 GiB), b.ipynb (8 GiB) hold memory on it',
    device: 0,
    device_name: 'NVIDIA A100',
    requested_bytes: 4 * GiB,
    free_bytes: 1 * GiB,
    holders: [
      {
        kernel_id: 'b',
        path: 'b.ipynb',
        bytes: 8 * GiB,
        idle: false,
        culled: false
      },
      {
        kernel_id: 'a',
        path: 'a.ipynb',
        bytes: 12 * GiB,
        idle: true,
        culled: false
      }
    ]
  };

  it('names the holders, largest first, and offers to stop the idle ones', () => {
    const view = gpuPressureNotice(data, { ...ctx, canStop: true });
    expect(view.message).toBe(
      'GPU 0 is full: a cell failed\nOther notebooks hold it: a.ipynb (12 GiB, idle), b.ipynb (8 GiB, running). Stop the idle ones to free it.'
    );
    // With fewer words to fit, the notebook is named too.
    const one = gpuPressureNotice(
      { ...data, holders: [data.holders[1]] },
      { ...ctx, canStop: true }
    );
    expect(one.message).toBe(
      'GPU 0 is full: a cell of train.ipynb failed\nOther notebooks hold it: a.ipynb (12 GiB, idle). Stop the idle ones to free it.'
    );
    expect(view.actions).toEqual(['stopIdle', 'panel']);
    expect(view.autoClose).toBe(false);
  });

  it('offers no stop without the permission, or without idle holders', () => {
    expect(gpuPressureNotice(data, { ...ctx, canStop: false }).actions).toEqual(
      ['panel']
    );
    const busy = {
      ...data,
      holders: data.holders.map(h => ({ ...h, idle: false }))
    };
    const view = gpuPressureNotice(busy, { ...ctx, canStop: true });
    expect(view.actions).toEqual(['panel']);
    expect(view.message).toContain('Ask their owners to free it.');
  });

  it('says which notebooks memguard shut down to make room', () => {
    const culled = {
      ...data,
      holders: [{ ...data.holders[1], culled: true }, data.holders[0]]
    };
    const view = gpuPressureNotice(culled, { ...ctx, canStop: true });
    expect(view.message).toContain(
      'memguard shut down a.ipynb (12 GiB, shut down) to make room.'
    );
    expect(view.actions).toEqual(['panel']);
    expect(stoppableHolders(culled).map(h => h.kernel_id)).toEqual([]);
  });

  it('fits many holders in a notice', () => {
    const many = {
      ...data,
      holders: Array.from({ length: 12 }, (_, i) => ({
        kernel_id: `k${i}`,
        path: `project/notebook-number-${i}.ipynb`,
        bytes: (i + 1) * GiB,
        idle: true,
        culled: false
      }))
    };
    const view = gpuPressureNotice(many, { ...ctx, canStop: true });
    expect(view.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
    expect(view.message).toMatch(/and \d+ more/);
    expect(holderList(many.holders, ctx, 2)).toMatch(/and 10 more$/);
  });

  it('asks before stopping, and says what is lost', () => {
    const holders = stoppableHolders(data);
    expect(holders.map(h => h.kernel_id)).toEqual(['a']);
    const text = gpuStopConfirmation(holders, ctx);
    expect(text.title).toBe('Stop 1 idle notebook?');
    expect(text.body).toContain('a.ipynb');
    expect(text.body).toContain('12 GiB of GPU memory');
    expect(text.body).toContain('variables are lost');
    expect(text.button).toBe('Stop the kernel');
    const two = gpuStopConfirmation(
      [holders[0], { ...holders[0], kernel_id: 'c', path: 'c.ipynb' }],
      ctx
    );
    expect(two.title).toBe('Stop 2 idle notebooks?');
    expect(two.body).toContain('All their variables are lost');
  });

  it('reports what was stopped', () => {
    const view = gpuStoppedNotice([data.holders[1]], [], ctx);
    expect(view.message).toContain('Stopped a.ipynb');
    expect(view.type).toBe('success');
  });
});

describe('cell badges and the timeline', () => {
  it('reads "+3.6 GiB · peak 4.1 GiB"', () => {
    expect(badgeText(cell(), ctx)).toBe('+3.6 GiB · peak 4.1 GiB');
    expect(
      badgeText(cell({ delta_bytes: -2 * GiB, peak_bytes: 3 * GiB }), ctx)
    ).toBe('\u22122 GiB · peak 3 GiB');
    expect(badgeText(cell({ overlapped: true }), ctx)).toBe(
      '≈+3.6 GiB · peak 4.1 GiB'
    );
    expect(badgeText(cell({ delta_bytes: null }), ctx)).toBe('peak 4.1 GiB');
  });

  it('explains the badge on hover', () => {
    expect(badgeTitle(cell(), ctx)).toBe(
      'Cell [7] changed its kernel’s memory by +3.6 GiB (512 MiB → 4.1 GiB); it peaked at 4.1 GiB and took 4.0 s. Click for the memory timeline.'
    );
  });

  it('says how a cell ended', () => {
    expect(cellStatusText(cell({ status: 'running' }), plainTrans)).toBe(
      'Still running'
    );
    expect(
      cellStatusText(
        cell({ status: 'error', ename: 'MemoryError' }),
        plainTrans
      )
    ).toBe('Failed with MemoryError');
    expect(cellStatusText(cell({ status: 'kernel_died' }), plainTrans)).toBe(
      'The kernel ended while it ran'
    );
  });

  it('gives a cell’s figures for the timeline', () => {
    expect(cellFigures(cell(), ctx)).toEqual([
      ['Before', '512 MiB'],
      ['Change', '+3.6 GiB'],
      ['Peak', '4.1 GiB'],
      ['Took', '4.0 s'],
      ['Status', 'Finished']
    ]);
    const running = cellFigures(
      cell({ status: 'running', ended_at: null, duration_s: null }),
      ctx
    );
    expect(running[1]).toEqual(['Change', 'still running']);
  });

  it('names the lines of the timeline', () => {
    expect(
      timelineLinesText(
        [
          { kind: 'limit', bytes: 600 * MiB },
          { kind: 'warn', bytes: 480 * MiB },
          { kind: 'halt', bytes: 540 * MiB }
        ],
        ctx
      )
    ).toBe(
      'limit 600 MiB · memguard warns at 480 MiB · stops the kernel at 540 MiB'
    );
  });
});

describe('advice in a stop notice', () => {
  it('ends with the advice where it fits', () => {
    const view = noticeFor(
      newIncident('k1', 0, {
        phase: 'ended',
        path: 'big.ipynb',
        termination: {
          id: 3,
          kernel_id: 'k1',
          path: 'big.ipynb',
          verdict: 'halted_by_memguard',
          confidence: 'confirmed',
          explanation: '',
          evidence: {},
          headline: 'Kernel stopped: it ran out of memory',
          summary:
            'memguard stopped the kernel while running cell [7]. Its variables are lost.',
          advice: 'Delete large variables you no longer need (`del df`).'
        }
      }),
      { ...ctx, now: 0, notebookOpen: true }
    );
    expect(view?.message).toContain(
      'Delete large variables you no longer need (`del df`).'
    );
    expect(view!.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
  });
});
