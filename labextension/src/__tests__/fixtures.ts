/**
 * What the specs share: sizes, the plain texts' context, and whole server records (a cell's
 * run, a kernel's end) that a spec overrides with the fields it is about.
 */
import { plainTrans } from '../messages';
import { ICellRecord, ITermination } from '../types';

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
    memory_before_bytes: 100 * MiB,
    memory_after_bytes: 100 * MiB,
    peak_bytes: 100 * MiB,
    delta_bytes: 0,
    duration_s: 1,
    overlapped: false,
    ...extra
  };
}

/** Kernel k1 of a.ipynb ended (journal id 7), with no evidence. */
export function terminationRecord(
  verdict: string,
  extra: Partial<ITermination> = {}
): ITermination {
  return {
    id: 7,
    kernel_id: 'k1',
    path: 'a.ipynb',
    verdict,
    confidence: 'high',
    explanation: '',
    evidence: {},
    ended_at: 1000,
    ...extra
  };
}
