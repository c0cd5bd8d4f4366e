import {
  DecodeError,
  decode,
  lenientArray,
  num,
  object,
  onSkipped,
  str
} from '../model/decode';
import {
  cell,
  kernel,
  kernelDetail,
  kernelsPage,
  status,
  termination,
  terminationPage,
  variablesPage
} from '../model/payloads';
import { MiB } from './fixtures';

const skipped: DecodeError[] = [];
beforeEach(() => {
  skipped.length = 0;
  onSkipped(error => skipped.push(error));
});

/** A kernel as GET /api/memguard/kernels lists it (the contract's fields). */
function kernelJson(
  extra: Record<string, unknown> = {}
): Record<string, unknown> {
  return {
    id: 'k1',
    name: 'python3',
    path: 'work/a.ipynb',
    pid: 42,
    execution_state: 'busy',
    idle_seconds: 0,
    connections: 1,
    started_at: 1000.5,
    protected: false,
    memory: {
      used_bytes: 420 * MiB,
      method: 'cgroup',
      rss_bytes: 2300 * MiB,
      peak_bytes: 500 * MiB,
      growth_bytes_per_s: 3 * MiB,
      sampled_at: 1100,
      source: 'proc',
      children: [43, 44]
    },
    memory_unavailable_reason: null,
    limit_bytes: 600 * MiB,
    limit_source: 'kernel_memory_limit',
    warn_bytes: 480 * MiB,
    halt_bytes: 540 * MiB,
    kill_bytes: 570 * MiB,
    level: 'ok',
    growing: true,
    gpu: null,
    cells_source: 'agent',
    halted: false,
    ...extra
  };
}

function recordJson(
  extra: Record<string, unknown> = {}
): Record<string, unknown> {
  return {
    id: 12,
    kernel_id: 'k1',
    kernel_name: 'python3',
    path: 'a.ipynb',
    pid: 42,
    started_at: 900,
    ended_at: 1000,
    verdict: 'halted_by_memguard',
    confidence: 'confirmed',
    explanation: 'memguard interrupted, then shut it down.',
    evidence: {
      limit_bytes: 600 * MiB,
      exit_signal: 'SIGKILL',
      kmsg_lines: ['Killed process 42'],
      running_cell: {
        msg_id: 'm7',
        execution_count: 7,
        code: 'x = big()',
        first_line: 'x = big()',
        started_at: 990,
        ended_at: null,
        status: 'kernel_died',
        memory_before_bytes: 100 * MiB,
        memory_after_bytes: null,
        peak_bytes: 560 * MiB,
        peak_above_start_bytes: 460 * MiB,
        delta_bytes: null,
        duration_s: null,
        source: 'agent',
        overlapped: false
      },
      history: [
        [990, 100 * MiB],
        [995, 500 * MiB]
      ]
    },
    headline: 'Kernel stopped: it ran out of memory',
    summary:
      'memguard stopped the kernel while cell [7] ran. Its variables are lost.',
    advice: 'Load the file in chunks.',
    severity: 'error',
    survived: false,
    trigger: { kind: 'kernel_limit', line: 'halt', line_bytes: 540 * MiB },
    ...extra
  };
}

describe('the decoders', () => {
  it('give primitive values their types, and say where one is wrong', () => {
    const point = object({ x: num, name: str });
    expect(decode(point, { x: 1, name: 'a', extra: true })).toEqual({
      ok: true,
      value: { x: 1, name: 'a' }
    });
    const wrong = decode(point, { x: '1', name: 'a' });
    expect(wrong.ok).toBe(false);
    expect(!wrong.ok && wrong.error.message).toBe(
      'x: expected a number, got "1"'
    );
    const missing = decode(point, { x: 1 });
    expect(!missing.ok && missing.error.path).toBe('name');
    expect(decode(point, null).ok).toBe(false);
    expect(decode(num, NaN).ok).toBe(false);
  });

  it('leave out the items of a list that do not decode, and say so', () => {
    expect(decode(lenientArray(num), [1, 'x', 3])).toEqual({
      ok: true,
      value: [1, 3]
    });
    expect(skipped.map(e => e.path)).toEqual(['[1]']);
  });
});

describe('kernels', () => {
  it('read a kernel as the contract gives it', () => {
    const k = kernel(kernelJson(), '');
    expect(k.memory?.used_bytes).toBe(420 * MiB);
    expect(k.memory?.method).toBe('cgroup');
    expect(k.warn_bytes).toBe(480 * MiB);
    expect(k.kill_bytes).toBe(570 * MiB);
    expect(k.growing).toBe(true);
    expect(k.cells_source).toBe('agent');
  });

  it('fill what an older server leaves out, and refuse what the guard needs', () => {
    const minimal = kernel(
      {
        id: 'k2',
        memory: null,
        limit_bytes: 1,
        warn_bytes: 1,
        halt_bytes: 1
      },
      ''
    );
    expect(minimal).toMatchObject({
      growing: false,
      halted: false,
      kill_bytes: null,
      level: 'ok',
      cells_source: null,
      path: null
    });
    expect(() => kernel(kernelJson({ id: undefined }), '')).toThrow(
      DecodeError
    );
    expect(() => kernel(kernelJson({ warn_bytes: '480M' }), '')).toThrow(
      'warn_bytes: expected a number'
    );
    expect(() =>
      kernel(kernelJson({ memory: { method: 'pss', sampled_at: 1 } }), '')
    ).toThrow('memory.used_bytes');
  });

  it('drop a kernel that does not decode, not the page', () => {
    const page = kernelsPage(
      {
        kernels: [kernelJson(), kernelJson({ id: 7 })],
        budget: { limit_bytes: 2, limit_source: 'host', usage_bytes: 1 }
      },
      ''
    );
    expect(page.kernels.map(k => k.id)).toEqual(['k1']);
    expect(skipped[0].path).toBe('kernels[1].id');
    expect(page.budget.warn_bytes).toBeNull();
    expect(() => kernelsPage({ kernels: [] }, '')).toThrow('budget');
  });

  it('read a level or a cells source newer than the page as a safe one', () => {
    const k = kernel(
      kernelJson({ level: 'purple', cells_source: 'telepathy', gpu: 'x' }),
      ''
    );
    expect(k.level).toBe('ok');
    expect(k.cells_source).toBeNull();
    expect(k.gpu).toBeNull();
  });

  it('take the history of the decision figure with one kernel', () => {
    const detail = kernelDetail(
      kernelJson({
        history: [
          [1, 10],
          [2, 'x'],
          [3, 30]
        ]
      }),
      ''
    );
    expect(detail.kernel.id).toBe('k1');
    expect(detail.history).toEqual([
      [1, 10],
      [3, 30]
    ]);
    expect(kernelDetail(kernelJson(), '').history).toEqual([]);
  });
});

describe('cells and variables', () => {
  it('read a cell, its own peak, and a status newer than the page', () => {
    const c = cell(
      {
        msg_id: 'm1',
        execution_count: 3,
        started_at: 1,
        status: 'teleported',
        peak_above_start_bytes: 5
      },
      ''
    );
    expect(c.status).toBe('unknown');
    expect(c.peak_above_start_bytes).toBe(5);
    expect(c.code).toBe('');
    expect(c.overlapped).toBe(false);
    expect(() => cell({ started_at: 'now' }, '')).toThrow('started_at');
  });

  it('read the variables, and why there are none', () => {
    const page = variablesPage(
      {
        kernel_id: 'k1',
        status: 'ok',
        reason: null,
        taken_at: 5,
        total_bytes: 3 * MiB,
        variables: [
          {
            name: 'df',
            type: 'DataFrame',
            bytes: 2 * MiB,
            qualifier: 'estimate',
            method: 'memory_usage(deep=True)',
            device: null,
            note: null
          },
          { name: 'broken' }
        ]
      },
      ''
    );
    expect(page.variables.map(v => v.name)).toEqual(['df']);
    expect(page.variables[0].qualifier).toBe('estimate');
    const busy = variablesPage({ kernel_id: 'k1', status: 'busy' }, '');
    expect(busy.status).toBe('busy');
    expect(busy.variables).toEqual([]);
    const none = variablesPage(
      { kernel_id: 'k1', status: 'unavailable', reason: 'an R kernel' },
      ''
    );
    expect(none.reason).toBe('an R kernel');
  });
});

describe('records', () => {
  it('read a record with its words, its trigger and its evidence', () => {
    const t = termination(recordJson(), '');
    expect(t.id).toBe(12);
    expect(t.words).toEqual({
      headline: 'Kernel stopped: it ran out of memory',
      summary:
        'memguard stopped the kernel while cell [7] ran. Its variables are lost.',
      advice: 'Load the file in chunks.',
      severity: 'error'
    });
    expect(t.trigger).toMatchObject({ kind: 'kernel_limit', line: 'halt' });
    expect(t.trigger?.by).toBeNull();
    expect(t.evidence.running_cell?.execution_count).toBe(7);
    expect(t.evidence.history).toHaveLength(2);
    expect(t.evidence.kmsg_lines).toEqual(['Killed process 42']);
    expect(t.evidence.top_cells).toEqual([]);
  });

  it('keep an unknown verdict, with its own words and severity', () => {
    const t = termination(
      recordJson({
        verdict: 'eaten_by_a_grue',
        headline: 'Kernel eaten',
        summary: 'A grue ate it.',
        severity: 'info',
        survived: true
      }),
      ''
    );
    expect(t.verdict).toBe('eaten_by_a_grue');
    expect(t.words.headline).toBe('Kernel eaten');
    expect(t.words.severity).toBe('info');
    expect(t.survived).toBe(true);
    // A severity newer than the page reads as a warning.
    expect(
      termination(recordJson({ severity: 'apocalyptic' }), '').words.severity
    ).toBe('warning');
  });

  it('refuse a record without its words, and drop odd evidence fields', () => {
    expect(() => termination(recordJson({ headline: undefined }), '')).toThrow(
      'headline'
    );
    expect(() => termination(recordJson({ verdict: 3 }), '')).toThrow(
      'verdict'
    );
    const odd = termination(
      recordJson({ evidence: { limit_bytes: 'big', kmsg_lines: 'x' } }),
      ''
    );
    expect(odd.evidence.limit_bytes).toBeNull();
    expect(odd.evidence.kmsg_lines).toEqual([]);
    const page = terminationPage(
      { terminations: [recordJson(), { id: 1 }], total: 2 },
      ''
    );
    expect(page.terminations).toHaveLength(1);
    expect(page.total).toBe(2);
  });
});

describe('status', () => {
  const json = {
    version: '0.2.0',
    budget: {
      limit_bytes: 2048 * MiB,
      limit_source: 'cgroup_v2',
      usage_bytes: 1024 * MiB,
      warn_bytes: 1638 * MiB
    },
    breakdown: {
      usage_bytes: 1024 * MiB,
      kernels: [{ kind: 'kernel', key: 'k1', bytes: 400 * MiB, pids: [1] }],
      server: { kind: 'server', key: 'server', bytes: 100 * MiB, pids: [2] },
      terminals: [],
      orphans: [{ kind: 'orphan', key: 'old', bytes: 300 * MiB, pids: [9] }],
      others: [],
      others_bytes: 0,
      others_count: 0,
      page_cache_bytes: 224 * MiB,
      shmem_bytes: 0,
      unattributed_bytes: 0
    },
    settings: {
      dry_run: false,
      guard_enabled: true,
      warn_fraction: 0.8,
      halt_fraction: 0.9
    },
    display_units: 'decimal',
    verdicts: {
      user_shutdown: {
        severity: 'info',
        survived: false,
        headline: 'Kernel shut down',
        quiet: true
      },
      interrupted_kept: {
        severity: 'warning',
        survived: true,
        headline: 'Cell stopped: memory limit',
        quiet: false
      }
    },
    doctor: { checks: [{ topic: 'cgroup', state: 'ok', text: 'v2' }] },
    orphans: [
      { kernel_id: 'old', pid: 9, path: 'old.ipynb', bytes: 1, action: 'kept' }
    ],
    can_halt: true
  };

  it('read the budget, its breakdown with the orphans, the verdicts and the units', () => {
    const s = status(json, '');
    expect(s.display_units).toBe('decimal');
    expect(s.budget.warn_bytes).toBe(1638 * MiB);
    expect(s.breakdown?.orphans[0].key).toBe('old');
    expect(s.verdicts.user_shutdown.quiet).toBe(true);
    expect(s.verdicts.interrupted_kept.survived).toBe(true);
    expect(s.doctor[0].topic).toBe('cgroup');
    expect(s.orphans[0].path).toBe('old.ipynb');
    expect(s.gpu_devices).toEqual([]);
    expect(s.settings.interrupt_grace).toBeNull();
  });

  it('take display_units from the settings of an older server', () => {
    const old = {
      ...json,
      display_units: undefined,
      settings: { ...json.settings, display_units: 'binary' }
    };
    expect(status(old, '').display_units).toBe('binary');
    expect(status({ ...json, display_units: 'metric' }, '').display_units).toBe(
      null
    );
  });

  it('still read a status whose optional parts are broken', () => {
    const s = status(
      { ...json, breakdown: { usage_bytes: 'x' }, verdicts: 3, doctor: [] },
      ''
    );
    expect(s.breakdown).toBeNull();
    expect(s.verdicts).toEqual({});
    expect(s.doctor).toEqual([]);
    expect(() => status({ ...json, budget: null }, '')).toThrow('budget');
  });
});
