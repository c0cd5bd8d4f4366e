/**
 * The texts of the status item, the panel, the cells and the Details view.
 */
import { newIncident } from '../model/incidents';
import { IStatusSettings, ITrigger } from '../model/types';
import {
  badgeText,
  badgeTitle,
  cellCode,
  cellFigures,
  cellNote,
  cellStatusText
} from '../texts/cells';
import { kernelLabel, plainTrans } from '../texts/common';
import {
  cellsSourceText,
  detailsFootnote,
  evidenceLines,
  methodText,
  timelineLinesText,
  triggerText
} from '../texts/details';
import {
  budgetText,
  fractionsText,
  haltConfirmation,
  orphanText,
  otherProcessText,
  segmentHint,
  segmentLabel,
  variableSize,
  variablesState
} from '../texts/panel';
import {
  chartLineLabel,
  gpuText,
  kernelFacts,
  kernelStateText,
  limitSourceText,
  linesText,
  statusText
} from '../texts/status';
import { SegmentKind } from '../views/breakdown';
import {
  cellRecord,
  ctx,
  GiB,
  kernelInfo,
  MiB,
  noEvidence,
  terminationRecord,
  wordsOf
} from './fixtures';

const SETTINGS: IStatusSettings = {
  dry_run: false,
  guard_enabled: true,
  warn_fraction: 0.8,
  halt_fraction: 0.9,
  interrupt_grace: 2,
  shutdown_grace: 3
};

describe('status item and kernel rows', () => {
  const kernel = kernelInfo('k1', 54 * MiB);

  it('reads "Mem 54 / 600 MiB"', () => {
    expect(statusText(54 * MiB, 600 * MiB, 'binary')).toBe('Mem 54 / 600 MiB');
  });

  it('explains the server’s warn and stop lines', () => {
    expect(linesText(kernel, SETTINGS, ctx)).toBe(
      'memguard warns at 80 % (480 MiB) and stops the kernel at 90 % (540 MiB).'
    );
    expect(linesText(kernel, { ...SETTINGS, dry_run: true }, ctx)).toContain(
      'dry run'
    );
    expect(
      linesText(kernel, { ...SETTINGS, guard_enabled: false }, ctx)
    ).toContain('does not stop kernels');
  });

  it('shows a growth rate only when the server says the kernel is growing', () => {
    const busy = kernelInfo('k1', 300 * MiB, {
      memory: {
        ...kernel.memory!,
        growth_bytes_per_s: 12 * MiB,
        peak_bytes: 310 * MiB
      }
    });
    expect(kernelFacts(busy, ctx)).toEqual(['peak 310 MiB']);
    expect(kernelFacts({ ...busy, growing: true }, ctx)).toEqual([
      'peak 310 MiB',
      'growing 12 MiB/s'
    ]);
    // No "0 child processes", no method words (those are for Details).
    expect(kernelFacts(busy, ctx).join(' ')).not.toMatch(/child|RSS|PSS/);
  });

  it('names limit sources and kernel states in words', () => {
    expect(limitSourceText('kernel_memory_limit', plainTrans)).toBe(
      "memguard's limit for each kernel (kernel_memory_limit)"
    );
    expect(
      kernelStateText({ execution_state: 'idle', idle_seconds: 12 }, plainTrans)
    ).toBe('Idle for 12 s');
    expect(
      kernelStateText({ execution_state: 'busy', idle_seconds: 0 }, plainTrans)
    ).toBe('Running code');
  });

  it('labels the lines of the tooltip’s chart, and the GPU', () => {
    expect(chartLineLabel('warn', 480 * MiB, ctx)).toBe('warn 480 MiB');
    expect(chartLineLabel('halt', 540 * MiB, ctx)).toBe('stop 540 MiB');
    expect(chartLineLabel('limit', 600 * MiB, ctx)).toBe('limit 600 MiB');
    expect(gpuText(null, ctx)).toBeNull();
    expect(
      gpuText(
        {
          used_bytes: 6 * GiB,
          devices: [
            {
              index: 0,
              name: 'H100',
              used_bytes: 6 * GiB,
              total_bytes: 80 * GiB
            }
          ]
        },
        ctx
      )
    ).toEqual({ short: 'GPU 6 GiB', lines: ['GPU 0 (H100): 6 / 80 GiB'] });
  });
});

describe('the Memory panel', () => {
  it('says what the budget counts, and what the lines mean', () => {
    const budget = {
      limit_bytes: 24 * GiB,
      limit_source: 'host',
      usage_bytes: 1.5 * GiB,
      warn_bytes: null
    };
    expect(budgetText(budget, ctx)).toBe(
      "This server's memory: 1.5 GiB used of 24 GiB (the whole machine, all programs counted)"
    );
    expect(budgetText({ ...budget, limit_source: 'cgroup_v2' }, ctx)).toContain(
      "container's limit"
    );
    expect(fractionsText(SETTINGS, plainTrans)).toBe(
      'memguard warns when a kernel reaches 80 % of its limit and stops it at 90 %, before the system runs out of memory.'
    );
    expect(
      fractionsText({ ...SETTINGS, warn_fraction: null }, plainTrans)
    ).toBeNull();
  });

  it('names every part of the bar, the orphaned kernels too, with no disclaimer', () => {
    const names: [SegmentKind, string | null, string][] = [
      ['kernel', 'k1', 'big.ipynb'],
      ['server', null, 'Jupyter server'],
      ['terminal', '1', 'Terminal 1'],
      ['orphans', null, 'Kernels left by a server that stopped'],
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
      const hint = segmentHint(kind, plainTrans);
      expect(hint.length).toBeGreaterThan(10);
      expect(hint).not.toMatch(/each counted with it/);
    }
    expect(
      orphanText({ name: 'old.ipynb', pids: [42], bytes: 1.2 * GiB }, ctx)
    ).toBe('old.ipynb — pid 42: 1.2 GiB');
  });

  it('lists another program with its command, pid, user and size', () => {
    expect(
      otherProcessText(
        {
          pid: 4242,
          name: 'python',
          cmdline: 'python train.py',
          user: 'alice',
          bytes: 1.6 * GiB,
          terminal: '1'
        },
        ctx
      )
    ).toBe('`python train.py` — pid 4242, alice, terminal 1: 1.6 GiB');
  });

  it('asks before a stop and says what is lost', () => {
    const text = haltConfirmation(
      kernelInfo('abcdef123456', 54 * MiB, { path: 'big.ipynb' }),
      ctx
    );
    expect(text.title).toBe('Stop this kernel?');
    expect(text.body).toBe(
      'The kernel of big.ipynb, which uses 54 MiB, will be shut down now. All its variables, and the result of any cell still running, are lost; the notebook itself is kept. Restart the kernel to go on.'
    );
    expect(text.button).toBe('Stop the kernel');
    expect(kernelLabel(null, 'abcdef123456', plainTrans)).toBe(
      'Kernel abcdef12'
    );
  });

  it('says what holds a kernel’s memory, and why it cannot', () => {
    const v = {
      name: 'df',
      type: 'DataFrame',
      bytes: 2 * GiB,
      qualifier: 'estimate' as const,
      method: 'memory_usage',
      device: null,
      note: null
    };
    expect(variableSize(v, ctx)).toBe('≈ 2 GiB');
    expect(variableSize({ ...v, qualifier: 'at_least' }, ctx)).toBe('≥ 2 GiB');
    expect(variableSize({ ...v, qualifier: 'exact' }, ctx)).toBe('2 GiB');
    const page = {
      kernel_id: 'k1',
      status: 'busy' as const,
      reason: null,
      taken_at: null,
      total_bytes: null,
      variables: []
    };
    expect(variablesState(page, null, ctx)).toMatch(/busy in native code/);
    expect(
      variablesState(
        { ...page, status: 'unavailable', reason: 'an R kernel has no agent' },
        null,
        ctx
      )
    ).toBe('Unavailable: an R kernel has no agent');
    expect(variablesState(null, 'HTTP 500', ctx)).toBe(
      'Could not ask the kernel: HTTP 500'
    );
    expect(
      variablesState(
        { ...page, status: 'ok', total_bytes: 3 * GiB, variables: [v] },
        null,
        ctx
      )
    ).toBe('The largest names of the kernel hold 3 GiB together.');
  });
});

describe('cells', () => {
  const cell = cellRecord({
    msg_id: 'm7',
    execution_count: 7,
    code: 'df = pd.read_csv("big.csv")\ndf.head()',
    first_line: 'df = pd.read_csv("big.csv")',
    ended_at: 104,
    memory_before_bytes: 0.5 * GiB,
    memory_after_bytes: 4.1 * GiB,
    peak_bytes: 9 * GiB,
    peak_above_start_bytes: 4.1 * GiB,
    delta_bytes: 3.6 * GiB,
    duration_s: 4
  });

  it('badges what the cell did: its change and its own peak, not the kernel’s', () => {
    expect(badgeText(cell, ctx)).toBe('+3.6 GiB · peak +4.1 GiB');
    expect(badgeText({ ...cell, overlapped: true }, ctx)).toBe(
      '≈+3.6 GiB · peak +4.1 GiB'
    );
    expect(badgeText({ ...cell, delta_bytes: null }, ctx)).toBe(
      'peak +4.1 GiB'
    );
    expect(badgeText({ ...cell, peak_above_start_bytes: null }, ctx)).toBe(
      '+3.6 GiB'
    );
    expect(badgeText(cell, ctx)).not.toContain('9 GiB');
  });

  it('explains the badge on hover', () => {
    expect(badgeTitle(cell, ctx)).toBe(
      'Cell [7] changed its kernel’s memory by +3.6 GiB (512 MiB → 4.1 GiB). At its peak it used 4.1 GiB more than when it started. It took 4.0 s. Click for the memory timeline.'
    );
  });

  it('gives a cell’s figures and how it ended', () => {
    expect(cellFigures(cell, ctx)).toEqual([
      ['Before', '512 MiB'],
      ['Change', '+3.6 GiB'],
      ['Peak above its start', '+4.1 GiB'],
      ['Took', '4.0 s'],
      ['Status', 'Finished']
    ]);
    expect(cellStatusText({ ...cell, status: 'halted' }, plainTrans)).toBe(
      'Stopped by memguard'
    );
    expect(cellCode({ ...cell, first_line: '' }, plainTrans)).toBe('cell [7]');
  });

  it('notes in the stopped cell what the server said', () => {
    const incident = newIncident('k1', 0, {
      words: wordsOf(
        'Kernel stopped',
        'memguard stopped the kernel at 555 MiB, past its stop line. Its variables are lost.',
        { advice: 'Read the file in chunks.' }
      )
    });
    expect(cellNote(incident, true, plainTrans)).toBe(
      'memguard stopped this cell: memguard stopped the kernel at 555 MiB, past its stop line. Its variables are lost. Read the file in chunks.'
    );
    expect(cellNote(incident, false, plainTrans)).toMatch(
      /^memguard interrupted this cell: /
    );
  });
});

describe('Details', () => {
  it('names the method as the server says, in plain words', () => {
    expect(methodText('cgroup', plainTrans)).toMatch(/cgroup/);
    expect(methodText('cgroup', plainTrans)).toMatch(/counted once/);
    expect(methodText('cgroup', plainTrans)).not.toMatch(/RSS/);
    expect(methodText('pss', plainTrans)).toMatch(/counted once \(PSS\)/);
    expect(methodText('rss', plainTrans)).toMatch(/RSS/);
    expect(methodText('usage_request', plainTrans)).toMatch(/reports/);
    expect(methodText('ebpf', plainTrans)).toBe(
      'Memory here is measured as “ebpf”.'
    );
    expect(detailsFootnote('cgroup', 'agent', plainTrans)).not.toMatch(
      /RSS of the kernel’s processes, as sampled/
    );
    expect(detailsFootnote(null, null, plainTrans)).toMatch(/^Times are/);
    expect(cellsSourceText('iopub', plainTrans)).toMatch(/≈/);
  });

  it('keeps the evidence for Details', () => {
    const lines = new Map(
      evidenceLines(
        terminationRecord('oom_killed', {
          confidence: 'confirmed',
          trigger: {
            kind: 'kernel_limit',
            line: 'halt',
            usage_bytes: null,
            limit_bytes: null,
            line_bytes: 540 * MiB,
            idle_seconds: null,
            timeout_seconds: null,
            by: null,
            device_index: null,
            requested_bytes: null
          },
          evidence: noEvidence({
            exit_signal: 'SIGKILL',
            last_rss_bytes: 3.9 * GiB,
            limit_bytes: 4 * GiB,
            limit_source: 'cgroup_v2',
            oom_kill_before: 0,
            oom_kill_after: 1,
            kmsg_lines: ['Killed process 42']
          })
        }),
        ctx
      )
    );
    expect(lines.get('Verdict')).toBe('oom_killed');
    expect(lines.get('Certainty')).toBe('confirmed');
    expect(lines.get('Why memguard acted')).toBe(
      'the kernel reached its own memory limit (its stop line, 540 MiB)'
    );
    expect(lines.get('Limit')).toBe("4 GiB · the container's memory limit");
    expect(lines.get('Out-of-memory kills counted (before → after)')).toBe(
      '0 → 1'
    );
    expect(lines.get('Kernel log')).toBe('Killed process 42');
    expect(lines.has('Exit code')).toBe(false);
  });

  it('says why memguard acted in words, from the structured trigger', () => {
    const trigger: ITrigger = {
      kind: 'budget',
      line: 'halt',
      usage_bytes: null,
      limit_bytes: null,
      line_bytes: 922 * MiB,
      idle_seconds: null,
      timeout_seconds: null,
      by: null,
      device_index: null,
      requested_bytes: null
    };
    expect(triggerText(trigger, ctx)).toBe(
      'this server’s memory was almost full (its stop line, 922 MiB)'
    );
    expect(triggerText({ ...trigger, kind: 'new_kind' }, ctx)).toBe(
      'new_kind (its stop line, 922 MiB)'
    );
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
