/**
 * What the specs share: sizes, the plain texts' context, and whole server records (a cell's
 * run, a kernel, a record of a kernel's end) that a spec overrides with the fields it is about.
 */
import { IHaltingEvent, IWarningEvent } from '../model/events';
import { evidence } from '../model/payloads';
import {
  ICellRecord,
  IEvidence,
  IKernel,
  ITermination,
  IWords
} from '../model/types';
import { plainTrans } from '../texts/common';

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

/** English texts, binary units. */
export const ctx = { trans: plainTrans, units: 'binary' as const };

/** A cell that ran for a second and kept nothing (100 MiB before, after and at its peak). */
export function cellRecord(extra: Partial<ICellRecord> = {}): ICellRecord {
  return {
    msg_id: 'm1',
    execution_count: 1,
    code: 'x = 1',
    first_line: 'x = 1',
    started_at: 100,
    ended_at: 101,
    status: 'ok',
    ename: null,
    memory_before_bytes: 100 * MiB,
    memory_after_bytes: 100 * MiB,
    peak_bytes: 100 * MiB,
    peak_above_start_bytes: 0,
    delta_bytes: 0,
    duration_s: 1,
    source: 'agent',
    overlapped: false,
    ...extra
  };
}

/** Kernel `id` of a.ipynb using `used` of 600 MiB (warn 480, stop 540), sampled at 2000. */
export function kernelInfo(
  id: string,
  used: number,
  extra: Partial<IKernel> = {}
): IKernel {
  return {
    id,
    name: 'python3',
    path: 'a.ipynb',
    pid: 1,
    execution_state: 'idle',
    idle_seconds: 0,
    connections: 1,
    started_at: 1,
    protected: false,
    memory: {
      used_bytes: used,
      method: 'pss',
      rss_bytes: used,
      peak_bytes: used,
      growth_bytes_per_s: 0,
      sampled_at: 2000,
      source: 'proc'
    },
    memory_unavailable_reason: null,
    limit_bytes: 600 * MiB,
    limit_source: 'kernel_memory_limit',
    warn_bytes: 480 * MiB,
    halt_bytes: 540 * MiB,
    kill_bytes: 570 * MiB,
    level: 'ok',
    growing: false,
    gpu: null,
    cells_source: 'agent',
    halted: false,
    ...extra
  };
}

/** The server's words, as a record or an event has them. */
export function wordsOf(
  headline: string,
  summary: string,
  extra: Partial<IWords> = {}
): IWords {
  return { headline, summary, advice: null, severity: 'error', ...extra };
}

/** No evidence (every field empty). */
export function noEvidence(extra: Partial<IEvidence> = {}): IEvidence {
  return { ...evidence({}, 'evidence'), ...extra };
}

/** Kernel k1 of a.ipynb ended (journal id 7), with no evidence. */
export function terminationRecord(
  verdict: string,
  extra: Partial<ITermination> = {}
): ITermination {
  return {
    id: 7,
    kernel_id: 'k1',
    kernel_name: 'python3',
    path: 'a.ipynb',
    verdict,
    confidence: 'high',
    explanation: '',
    evidence: noEvidence(),
    ended_at: 1000,
    words: wordsOf(`Headline of ${verdict}`, `Summary of ${verdict}.`),
    survived: false,
    trigger: null,
    ...extra
  };
}

/** A memory_warning of k1 (a.ipynb): 490 MiB of 600 MiB. */
export function warningEvent(
  extra: Partial<IWarningEvent> = {}
): IWarningEvent {
  return {
    kernel_id: 'k1',
    path: 'a.ipynb',
    usage_bytes: 490 * MiB,
    limit_bytes: 600 * MiB,
    warn_bytes: 480 * MiB,
    halt_bytes: 540 * MiB,
    kill_bytes: 570 * MiB,
    trigger: null,
    variables: null,
    words: wordsOf('Memory high', 'It uses 490 MiB of 600 MiB.', {
      severity: 'warning'
    }),
    ...extra
  };
}

/** A kernel_halting of k1 past its stop line. */
export function haltingEvent(
  extra: Partial<IHaltingEvent> = {}
): IHaltingEvent {
  return {
    kernel_id: 'k1',
    path: 'a.ipynb',
    usage_bytes: 545 * MiB,
    limit_bytes: 600 * MiB,
    action: 'interrupt',
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
    dry_run: false,
    variables: null,
    words: wordsOf(
      'memguard is stopping the kernel',
      'It used 545 MiB, past its stop line of 540 MiB.',
      { severity: 'warning' }
    ),
    ...extra
  };
}
