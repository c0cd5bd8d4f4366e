import { onSkipped } from '../model/decode';
import { decodeEvent, EVENT_PREFIX } from '../model/events';
import { MiB } from './fixtures';

beforeAll(() => onSkipped(() => undefined));

const words = {
  headline: 'Memory high',
  summary: 'The kernel uses 490 MiB of 600 MiB; memguard stops it at 540 MiB.',
  advice: null,
  severity: 'warning'
};

function emission(kind: string, data: Record<string, unknown>) {
  return { schema_id: `${EVENT_PREFIX}${kind}/v1`, ...data };
}

describe('decodeEvent', () => {
  it('ignores what is not memguard’s, and kinds it does not know', () => {
    expect(
      decodeEvent({ schema_id: 'https://x/kernel_actions/v1' })
    ).toBeNull();
    expect(decodeEvent(emission('memory_dream', words))).toBeNull();
    expect(decodeEvent('text')).toBeNull();
    expect(decodeEvent({})).toBeNull();
  });

  it('reads a memory_warning with the server’s words and lines', () => {
    const decoded = decodeEvent(
      emission('memory_warning', {
        kernel_id: 'k1',
        path: 'a.ipynb',
        usage_bytes: 490 * MiB,
        limit_bytes: 600 * MiB,
        warn_bytes: 480 * MiB,
        halt_bytes: 540 * MiB,
        kill_bytes: 570 * MiB,
        fraction: 0.82,
        trigger: { kind: 'kernel_limit', line: 'warn' },
        variables: [
          {
            name: 'df',
            type: 'DataFrame',
            bytes: 300 * MiB,
            qualifier: 'exact'
          }
        ],
        ...words
      })
    );
    expect(decoded?.ok).toBe(true);
    if (decoded?.ok && decoded.event.kind === 'memory_warning') {
      const data = decoded.event.data;
      expect(data.words).toEqual(words);
      expect(data.halt_bytes).toBe(540 * MiB);
      expect(data.trigger?.line).toBe('warn');
      expect(data.variables?.[0].name).toBe('df');
    } else {
      throw new Error('not a warning');
    }
  });

  it('says why an event cannot be read: a missing kernel id, wrong types, no words', () => {
    const noKernel = decodeEvent(emission('kernel_halting', { ...words }));
    expect(noKernel).toMatchObject({ ok: false, kind: 'kernel_halting' });
    expect(!noKernel?.ok && noKernel?.error.path).toBe('kernel_id');
    const wrong = decodeEvent(
      emission('kernel_halting', {
        kernel_id: 'k1',
        usage_bytes: '5',
        ...words
      })
    );
    expect(!wrong?.ok && wrong?.error.path).toBe('usage_bytes');
    const mute = decodeEvent(emission('memory_warning', { kernel_id: 'k1' }));
    expect(!mute?.ok && mute?.error.path).toBe('headline');
  });

  it('reads kernel_terminated as a record, its id from termination_id', () => {
    const decoded = decodeEvent(
      emission('kernel_terminated', {
        kernel_id: 'k1',
        kernel_name: 'python3',
        path: 'a.ipynb',
        verdict: 'interrupted_kept',
        confidence: 'confirmed',
        explanation: 'interrupted at the stop line; the kernel kept running',
        evidence: {},
        termination_id: 31,
        ended_at: 1000.5,
        survived: true,
        trigger: { kind: 'kernel_limit', line: 'halt', line_bytes: 540 * MiB },
        headline: 'Cell stopped: memory limit',
        summary:
          'memguard stopped cell [7]. Free `df` before you run it again.',
        advice: null,
        severity: 'warning'
      })
    );
    expect(decoded?.ok && decoded.event.kind).toBe('kernel_terminated');
    if (decoded?.ok && decoded.event.kind === 'kernel_terminated') {
      expect(decoded.event.data.id).toBe(31);
      expect(decoded.event.data.survived).toBe(true);
      expect(decoded.event.data.words.headline).toBe(
        'Cell stopped: memory limit'
      );
      expect(decoded.event.data.trigger?.line_bytes).toBe(540 * MiB);
    }
  });

  it('keeps an unknown verdict with its own words and severity', () => {
    const decoded = decodeEvent(
      emission('kernel_terminated', {
        kernel_id: 'k1',
        verdict: 'abducted',
        confidence: 'low',
        explanation: '',
        headline: 'Kernel abducted',
        summary: 'It left.',
        severity: 'info'
      })
    );
    expect(decoded?.ok).toBe(true);
    if (decoded?.ok && decoded.event.kind === 'kernel_terminated') {
      expect(decoded.event.data.verdict).toBe('abducted');
      expect(decoded.event.data.words.severity).toBe('info');
      expect(decoded.event.data.id).toBeNull();
    }
  });

  it('reads the halt steps and culls', () => {
    const step = decodeEvent(
      emission('kernel_halted', { kernel_id: 'k1', step: 'shutdown', ...words })
    );
    expect(step?.ok && step.event.kind).toBe('kernel_halted');
    const cull = decodeEvent(
      emission('kernel_culled', {
        kernel_id: 'k1',
        idle_seconds: 3600,
        dry_run: true,
        trigger: { kind: 'idle' },
        ...words
      })
    );
    expect(cull?.ok).toBe(true);
    if (cull?.ok && cull.event.kind === 'kernel_culled') {
      expect(cull.event.data.dry_run).toBe(true);
      expect(cull.event.data.trigger?.kind).toBe('idle');
    }
  });

  it('reads pressure with its culprit, and the words of an older server', () => {
    const decoded = decodeEvent(
      emission('memory_pressure', {
        usage_bytes: 1900 * MiB,
        limit_bytes: 2048 * MiB,
        culprit: {
          pid: 4242,
          name: 'python',
          cmdline: 'python train.py',
          user: 'alice',
          bytes: 1600 * MiB,
          terminal: '1'
        },
        message: 'A process outside your notebooks uses 1.6 GiB.'
      })
    );
    expect(decoded?.ok).toBe(true);
    if (decoded?.ok && decoded.event.kind === 'memory_pressure') {
      expect(decoded.event.data.words.summary).toBe(
        'A process outside your notebooks uses 1.6 GiB.'
      );
      expect(decoded.event.data.words.headline).toBe('');
      expect(decoded.event.data.culprit?.terminal).toBe('1');
    }
    const silent = decodeEvent(emission('memory_pressure', { usage_bytes: 1 }));
    expect(silent?.ok).toBe(false);
  });

  it('reads gpu_pressure with its holders', () => {
    const decoded = decodeEvent(
      emission('gpu_pressure', {
        kernel_id: 'k1',
        path: 'a.ipynb',
        device: 0,
        requested_bytes: 2048 * MiB,
        holders: [
          { kernel_id: 'k2', path: 'b.ipynb', bytes: 3072 * MiB, idle: true },
          { kernel_id: 5 }
        ],
        message: 'GPU 0 is full: b.ipynb holds 3 GiB.',
        headline: 'GPU 0 is full',
        summary: 'GPU 0 is full: b.ipynb holds 3 GiB.',
        severity: 'warning'
      })
    );
    expect(decoded?.ok).toBe(true);
    if (decoded?.ok && decoded.event.kind === 'gpu_pressure') {
      expect(decoded.event.data.holders.map(h => h.kernel_id)).toEqual(['k2']);
      expect(decoded.event.data.words.headline).toBe('GPU 0 is full');
    }
  });
});
