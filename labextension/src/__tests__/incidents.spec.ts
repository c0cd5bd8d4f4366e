import { IGpuPressureEvent, IPressureEvent } from '../model/events';
import {
  IIncident,
  kernelBack,
  newIncident,
  onBudget,
  onGpuPressure,
  onHalting,
  onHaltStep,
  onKernels,
  onPressure,
  onTerminated,
  onWarning,
  terminationKey
} from '../model/incidents';
import {
  haltingEvent,
  kernelInfo,
  MiB,
  terminationRecord,
  warningEvent,
  wordsOf
} from './fixtures';

const gpuEvent: IGpuPressureEvent = {
  kernel_id: 'k1',
  path: 'a.ipynb',
  device: 0,
  requested_bytes: MiB,
  holders: [
    { kernel_id: 'k9', path: 'b.ipynb', bytes: MiB, idle: true, culled: false }
  ],
  words: wordsOf('GPU 0 is full', 'b.ipynb holds it.', { severity: 'warning' })
};

describe('one incident per kernel event', () => {
  it('goes warning → halting → ended in one incident, with the server’s words each time', () => {
    const warned = onWarning(null, warningEvent(), 1);
    expect(warned.phase).toBe('warning');
    expect(warned.words?.headline).toBe('Memory high');
    expect(warned.warnBytes).toBe(480 * MiB);
    const halting = onHalting(warned, haltingEvent(), 2);
    expect(halting.key).toBe(warned.key);
    expect(halting.phase).toBe('halting');
    expect(halting.haltingAt).toBe(2);
    expect(halting.trigger?.kind).toBe('kernel_limit');
    expect(halting.words?.summary).toContain('past its stop line');
    const stepped = onHaltStep(
      halting,
      {
        kernel_id: 'k1',
        path: 'a.ipynb',
        step: 'shutdown',
        usage_bytes: null,
        limit_bytes: null,
        dry_run: false,
        words: wordsOf('Shutting down', 'The interrupt did not free it.')
      },
      3
    )!;
    expect(stepped.step).toBe('shutdown');
    // The halt's words (why) stay; the step's words say what memguard does now.
    expect(stepped.words).toEqual(halting.words);
    expect(stepped.stepWords?.headline).toBe('Shutting down');
    const t = terminationRecord('halted_by_memguard');
    const ended = onTerminated(stepped, null, t, 4, false)!;
    expect(ended.key).toBe(warned.key);
    expect(ended.phase).toBe('ended');
    expect(ended.words).toEqual(t.words);
    expect(ended.usageBytes).toBe(545 * MiB);
  });

  it('does not turn a halt back into a warning', () => {
    const halting = onHalting(null, haltingEvent(), 1);
    expect(onWarning(halting, warningEvent(), 2)).toBe(halting);
  });

  it('starts a new incident after the last one ended', () => {
    const ended = onTerminated(
      null,
      null,
      terminationRecord('oom_killed'),
      1,
      false
    )!;
    const next = onWarning(ended, warningEvent(), 2);
    expect(next.key).not.toBe(ended.key);
  });

  it('stays quiet for a quiet verdict, closing what was under way', () => {
    expect(
      onTerminated(null, null, terminationRecord('user_shutdown'), 1, true)
    ).toBeNull();
    const warned = onWarning(null, warningEvent(), 1);
    expect(
      onTerminated(warned, null, terminationRecord('user_restart'), 2, true)!
        .phase
    ).toBe('closed');
  });

  it('turns a halt the kernel survived into "kept", in the same notice', () => {
    const halting = onHalting(null, haltingEvent(), 1);
    const kept = onTerminated(
      halting,
      null,
      terminationRecord('interrupted_kept', {
        survived: true,
        words: wordsOf('Cell stopped: memory limit', 'Free `df` to go on.', {
          severity: 'warning'
        })
      }),
      2,
      false
    )!;
    expect(kept.key).toBe(halting.key);
    expect(kept.phase).toBe('kept');
    expect(kept.words?.headline).toBe('Cell stopped: memory limit');
  });

  it('makes a note of its own when the kernel survived something else', () => {
    const warned = onWarning(null, warningEvent(), 1);
    const note = onTerminated(
      warned,
      null,
      terminationRecord('child_oom_killed', { survived: true }),
      2,
      false
    )!;
    expect(note.phase).toBe('kept');
    expect(note.key).not.toBe(warned.key);
  });

  it('shows an unknown verdict with its own words', () => {
    const t = terminationRecord('new_verdict_2027', {
      words: wordsOf('Something new', 'The server says what.', {
        severity: 'info'
      })
    });
    const incident = onTerminated(null, null, t, 1, false)!;
    expect(incident.phase).toBe('ended');
    expect(incident.words?.severity).toBe('info');
  });

  it('joins a GPU out-of-memory record and the GPU pressure event', () => {
    const oom = onTerminated(
      null,
      null,
      terminationRecord('gpu_out_of_memory', { survived: true }),
      1,
      false
    )!;
    const joined = onGpuPressure(oom, gpuEvent, 2);
    expect(joined.key).toBe(oom.key);
    expect(joined.gpu).toBe(gpuEvent);
    expect(joined.words?.headline).toBe('GPU 0 is full');
    // The other way round: the record joins the GPU notice and keeps its words.
    const gpu = onGpuPressure(null, gpuEvent, 1);
    const record = onTerminated(
      null,
      gpu,
      terminationRecord('gpu_out_of_memory', { survived: true }),
      2,
      false
    )!;
    expect(record.key).toBe(gpu.key);
    expect(record.words?.headline).toBe('GPU 0 is full');
    expect(record.termination?.verdict).toBe('gpu_out_of_memory');
  });

  it('keeps an interrupt the kernel survived apart from a GPU notice of the same kernel', () => {
    const gpu = onGpuPressure(null, gpuEvent, 1);
    const halting = onHalting(null, haltingEvent(), 2);
    const kept = onTerminated(
      halting,
      gpu,
      terminationRecord('interrupted_kept', { survived: true }),
      3,
      false
    )!;
    expect(kept.key).toBe(halting.key);
    expect(kept.phase).toBe('kept');
    expect(kept.termination?.verdict).toBe('interrupted_kept');
    expect(kept.gpu).toBeNull();
  });

  it('keys records by journal id, else by kernel and time', () => {
    expect(terminationKey(terminationRecord('oom_killed'))).toBe('t7');
    expect(terminationKey(terminationRecord('oom_killed', { id: null }))).toBe(
      'kk1@1000:oom_killed'
    );
  });
});

describe('memory pressure', () => {
  const ev: IPressureEvent = {
    usage_bytes: 1900 * MiB,
    limit_bytes: 2048 * MiB,
    kernels_bytes: 100 * MiB,
    outside_bytes: 1800 * MiB,
    culprit: null,
    words: wordsOf('', '`python train.py` uses 1.6 GiB.', {
      severity: 'warning'
    })
  };

  it('is one incident, updated by each event, relieved under the warn line', () => {
    const first = onPressure(null, ev, 1);
    const second = onPressure(first, ev, 2);
    expect(second.key).toBe(first.key);
    const budget = {
      limit_bytes: 2048 * MiB,
      limit_source: 'cgroup_v2',
      usage_bytes: 1000 * MiB,
      warn_bytes: 1638 * MiB
    };
    // A poll from before the event says nothing.
    expect(onBudget(second, budget, 1638 * MiB, 1).phase).toBe('pressure');
    expect(
      onBudget(second, { ...budget, usage_bytes: 1700 * MiB }, 1638 * MiB, 5)
        .phase
    ).toBe('pressure');
    expect(onBudget(second, budget, null, 5).phase).toBe('pressure');
    const relieved = onBudget(second, budget, 1638 * MiB, 5);
    expect(relieved.phase).toBe('relieved');
    expect(relieved.usageBytes).toBe(1000 * MiB);
  });
});

describe('polls move incidents on', () => {
  const warned: IIncident = newIncident('k1', 0, {
    phase: 'warning',
    warnBytes: 480 * MiB,
    limitBytes: 600 * MiB
  });

  it('recovers a warning once memory is back under the server’s warn line', () => {
    expect(
      onKernels(warned, [kernelInfo('k1', 500 * MiB)], 10, 2000).phase
    ).toBe('warning');
    const down = onKernels(warned, [kernelInfo('k1', 100 * MiB)], 10, 2000);
    expect(down.phase).toBe('recovered');
    expect(down.currentBytes).toBe(100 * MiB);
  });

  it('recovers a halt only after the grace, when the interrupt freed memory', () => {
    const halting = { ...warned, phase: 'halting' as const, haltingAt: 0 };
    const low = [kernelInfo('k1', 100 * MiB)];
    expect(onKernels(halting, low, 1000, 2000).phase).toBe('halting');
    expect(onKernels(halting, low, 4000, 2000).phase).toBe('recovered');
    const escalated = { ...halting, step: 'shutdown' };
    expect(onKernels(escalated, low, 9000, 2000).phase).toBe('halting');
  });

  it('sees an ended kernel back: restarted in place, or a new kernel for the notebook', () => {
    const ended = onTerminated(
      null,
      null,
      terminationRecord('killed_externally'),
      1,
      false
    )!;
    const before = kernelInfo('k1', 50 * MiB);
    before.memory!.sampled_at = 999;
    expect(kernelBack(ended, [before])).toBeNull();
    expect(kernelBack(ended, [kernelInfo('k1', 50 * MiB)])).not.toBeNull();
    expect(kernelBack(ended, [kernelInfo('k2', 50 * MiB)])).not.toBeNull();
    expect(
      kernelBack(ended, [
        kernelInfo('k2', 50 * MiB, { execution_state: 'starting' })
      ])
    ).toBeNull();
    expect(
      kernelBack(ended, [kernelInfo('k3', 50 * MiB, { path: 'b.ipynb' })])
    ).toBeNull();
    expect(onKernels(ended, [kernelInfo('k2', 50 * MiB)], 5, 2000).phase).toBe(
      'back'
    );
  });
});
