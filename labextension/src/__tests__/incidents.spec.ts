import {
  IIncident,
  kernelBack,
  newIncident,
  onHalting,
  onHaltStep,
  onKernels,
  onTerminated,
  onWarning,
  terminationKey
} from '../incidents';
import { IKernelInfo } from '../types';
import { MiB, terminationRecord } from './fixtures';

const F = { warn: 0.8, halt: 0.9 };

function kernel(
  id: string,
  rss: number,
  extra: Partial<IKernelInfo> = {}
): IKernelInfo {
  return {
    id,
    name: 'python3',
    path: 'a.ipynb',
    pid: 1,
    execution_state: 'idle',
    idle_seconds: 0,
    connections: 1,
    protected: false,
    memory: {
      rss_bytes: rss,
      peak_bytes: rss,
      growth_bytes_per_s: 0,
      children: [],
      pss_bytes: null,
      uss_bytes: null,
      sampled_at: 2000
    },
    memory_unavailable_reason: null,
    limit_bytes: 600 * MiB,
    limit_source: 'kernel_memory_limit',
    warn_bytes: 480 * MiB,
    halt_bytes: 540 * MiB,
    level: 'ok',
    gpu: null,
    ...extra
  };
}

describe('one incident per kernel event', () => {
  it('goes warning → halting → ended in one incident', () => {
    const warned = onWarning(
      null,
      {
        kernel_id: 'k1',
        path: 'a.ipynb',
        usage_bytes: 490 * MiB,
        limit_bytes: 600 * MiB
      },
      1,
      F
    );
    expect(warned.phase).toBe('warning');
    expect(warned.haltBytes).toBe(Math.round(600 * MiB * 0.9));
    const halting = onHalting(
      warned,
      { kernel_id: 'k1', usage_bytes: 545 * MiB, limit_bytes: 600 * MiB },
      2,
      F
    );
    expect(halting.key).toBe(warned.key);
    expect(halting.phase).toBe('halting');
    expect(halting.haltingAt).toBe(2);
    const stepped = onHaltStep(
      halting,
      { kernel_id: 'k1', step: 'shutdown' },
      3
    )!;
    expect(stepped.step).toBe('shutdown');
    const ended = onTerminated(
      stepped,
      terminationRecord('halted_by_memguard'),
      4
    )!;
    expect(ended.key).toBe(warned.key);
    expect(ended.phase).toBe('ended');
    expect(ended.usageBytes).toBe(545 * MiB);
  });

  it('tells a stop from the Memory panel from a stop for memory', () => {
    const admin = onHalting(
      null,
      { kernel_id: 'k1', limit_bytes: 100, usage_bytes: 5, action: 'shutdown' },
      1,
      F
    );
    expect(admin.admin).toBe(true);
    const memory = onHalting(
      null,
      {
        kernel_id: 'k1',
        limit_bytes: 100,
        usage_bytes: 95,
        action: 'interrupt'
      },
      1,
      F
    );
    expect(memory.admin).toBe(false);
  });

  it('does not turn a halt back into a warning', () => {
    const halting = onHalting(
      null,
      { kernel_id: 'k1', limit_bytes: 100 },
      1,
      F
    );
    expect(
      onWarning(halting, { kernel_id: 'k1', limit_bytes: 100 }, 2, F)
    ).toBe(halting);
  });

  it('starts a new incident after the last one ended', () => {
    const ended = onTerminated(null, terminationRecord('oom_killed'), 1)!;
    const next = onWarning(ended, { kernel_id: 'k1', limit_bytes: 100 }, 2, F);
    expect(next.key).not.toBe(ended.key);
  });

  it('stays quiet for what the user did, closing what was under way', () => {
    expect(
      onTerminated(null, terminationRecord('user_shutdown'), 1)
    ).toBeNull();
    const warned = onWarning(null, { kernel_id: 'k1', limit_bytes: 100 }, 1, F);
    expect(
      onTerminated(warned, terminationRecord('user_restart'), 2)!.phase
    ).toBe('closed');
  });

  it('makes a separate note when the kernel survived', () => {
    const warned = onWarning(null, { kernel_id: 'k1', limit_bytes: 100 }, 1, F);
    const note = onTerminated(
      warned,
      terminationRecord('gpu_out_of_memory'),
      2
    )!;
    expect(note.phase).toBe('note');
    expect(note.key).not.toBe(warned.key);
  });

  it('keys terminations by journal id, else by kernel and time', () => {
    expect(terminationKey(terminationRecord('oom_killed'))).toBe('t7');
    expect(terminationKey(terminationRecord('oom_killed', { id: null }))).toBe(
      'kk1@1000:oom_killed'
    );
  });
});

describe('polls move incidents on', () => {
  const warned: IIncident = newIncident('k1', 0, {
    phase: 'warning',
    warnBytes: 480 * MiB,
    limitBytes: 600 * MiB
  });

  it('recovers a warning once memory is back under the line', () => {
    expect(onKernels(warned, [kernel('k1', 500 * MiB)], 10, 2000).phase).toBe(
      'warning'
    );
    const down = onKernels(warned, [kernel('k1', 100 * MiB)], 10, 2000);
    expect(down.phase).toBe('recovered');
    expect(down.currentBytes).toBe(100 * MiB);
  });

  it('recovers a halt only after the grace, when the interrupt freed memory', () => {
    const halting = { ...warned, phase: 'halting' as const, haltingAt: 0 };
    expect(
      onKernels(halting, [kernel('k1', 100 * MiB)], 1000, 2000).phase
    ).toBe('halting');
    expect(
      onKernels(halting, [kernel('k1', 100 * MiB)], 4000, 2000).phase
    ).toBe('recovered');
    const escalated = { ...halting, step: 'shutdown' };
    expect(
      onKernels(escalated, [kernel('k1', 100 * MiB)], 9000, 2000).phase
    ).toBe('halting');
  });

  it('sees an ended kernel back: restarted in place, or a new kernel for the notebook', () => {
    const ended = onTerminated(
      null,
      terminationRecord('killed_externally'),
      1
    )!;
    // The same kernel, sampled before its end: not back.
    const before = kernel('k1', 50 * MiB);
    before.memory!.sampled_at = 999;
    expect(kernelBack(ended, [before])).toBeNull();
    // Sampled after its end (automatic restart): back.
    expect(kernelBack(ended, [kernel('k1', 50 * MiB)])).not.toBeNull();
    // A new kernel for the same notebook: back.
    expect(kernelBack(ended, [kernel('k2', 50 * MiB)])).not.toBeNull();
    // Still starting, or another notebook: not back.
    expect(
      kernelBack(ended, [
        kernel('k2', 50 * MiB, { execution_state: 'starting' })
      ])
    ).toBeNull();
    expect(
      kernelBack(ended, [kernel('k3', 50 * MiB, { path: 'b.ipynb' })])
    ).toBeNull();
    expect(onKernels(ended, [kernel('k2', 50 * MiB)], 5, 2000).phase).toBe(
      'back'
    );
  });
});
