/**
 * Cells and their records (pure, jest-tested): which executed cells get a memory badge, which
 * record belongs to which cell (by the msg_id of the cell's execute_request where it is known,
 * else by the execution count in its prompt and its first line), and which cells "Restart and
 * run" runs again.
 */
import { ICellRecord } from '../model/types';
import { IRunRange } from '../texts/notices';

export interface IBadgeSettings {
  /** Badges at all. */
  enabled: boolean;
  /** A change of at least this many MiB is notable (0: this rule is off). */
  thresholdMiB: number;
  /** A change of at least this percent of the kernel's limit is notable (0: off). */
  thresholdPercent: number;
}

export const DEFAULT_BADGE_SETTINGS: IBadgeSettings = {
  enabled: true,
  thresholdMiB: 100,
  thresholdPercent: 5
};

const MiB = 1024 ** 2;

/**
 * The smallest change (bytes) that earns a badge: the lower of the two rules in force.
 * 0 when both rules are off (every executed cell whose memory changed gets one).
 */
export function badgeThreshold(
  limitBytes: number | null | undefined,
  settings: IBadgeSettings
): number {
  const rules: number[] = [];
  if (settings.thresholdMiB > 0) {
    rules.push(settings.thresholdMiB * MiB);
  }
  if (settings.thresholdPercent > 0 && limitBytes && limitBytes > 0) {
    rules.push((settings.thresholdPercent / 100) * limitBytes);
  }
  if (!rules.length) {
    return settings.thresholdMiB > 0 || settings.thresholdPercent > 0
      ? Infinity
      : 0;
  }
  return Math.min(...rules);
}

/**
 * How much a cell moved the kernel's memory: what it kept (or gave back), or its own peak
 * above where it started, whichever is more.
 */
export function cellChange(cell: ICellRecord): number {
  return Math.max(
    Math.abs(cell.delta_bytes ?? 0),
    cell.peak_above_start_bytes ?? 0,
    0
  );
}

/** Whether an executed cell gets a badge. */
export function isNotable(
  cell: ICellRecord,
  limitBytes: number | null | undefined,
  settings: IBadgeSettings
): boolean {
  if (!settings.enabled || cell.status === 'running') {
    return false;
  }
  const change = cellChange(cell);
  return change > 0 && change >= badgeThreshold(limitBytes, settings);
}

/** A notebook cell as the matching sees it. */
export interface ICellRef {
  /** The cell model's id. */
  id: string;
  /** The msg_id of its last execute_request, when known. */
  msgId: string | null;
  /** The count in its prompt. */
  executionCount: number | null;
  source: string;
}

function firstLine(text: string): string {
  const line =
    text
      .replace(/^\s*\n/, '')
      .trimStart()
      .split('\n')[0] ?? '';
  return line.replace(/\s+/g, ' ').trim();
}

/**
 * The record of each cell's last execution (records newest first, as the server gives them).
 * A cell whose msg_id is known gets its record or none; a cell without one gets the newest
 * record with its execution count that no other cell claimed by msg_id, if the record's
 * first line still begins the cell.
 */
export function matchRecords(
  cells: ReadonlyArray<ICellRef>,
  records: ReadonlyArray<ICellRecord>
): Map<string, ICellRecord> {
  const matched = new Map<string, ICellRecord>();
  const byMsg = new Map<string, ICellRecord>();
  for (const record of records) {
    if (record.msg_id && !byMsg.has(record.msg_id)) {
      byMsg.set(record.msg_id, record);
    }
  }
  const claimed = new Set<ICellRecord>();
  for (const cell of cells) {
    const record = cell.msgId ? byMsg.get(cell.msgId) : undefined;
    if (record) {
      matched.set(cell.id, record);
      claimed.add(record);
    }
  }
  for (const cell of cells) {
    if (cell.msgId || cell.executionCount === null) {
      continue;
    }
    const record = records.find(
      r =>
        !claimed.has(r) &&
        r.execution_count === cell.executionCount &&
        firstLine(cell.source).startsWith(firstLine(r.first_line ?? ''))
    );
    if (record) {
      matched.set(cell.id, record);
      claimed.add(record);
    }
  }
  return matched;
}

/** A notebook cell as "Restart and run" sees it. */
export interface IRunCell {
  /** "code", "markdown", "raw". */
  type: string;
  /** The count in its prompt (code cells). */
  executionCount: number | null;
}

/**
 * The cells "Restart and run" runs again: every cell above the one that was running when the
 * kernel stopped (`failing`, its index), not that one. Null when there is no code cell above
 * it (or the failing cell is not known): then a plain restart is offered.
 */
export function runRange(
  cells: ReadonlyArray<IRunCell>,
  failing: number
): IRunRange | null {
  if (failing <= 0 || failing > cells.length) {
    return null;
  }
  const code = cells.slice(0, failing).filter(c => c.type === 'code');
  if (!code.length) {
    return null;
  }
  const counts = code.map(c => c.executionCount);
  // The prompts name the range only when every cell has a count and they run in order.
  const ordered = counts.every(
    (n, i) => n !== null && (i === 0 || n > (counts[i - 1] ?? Infinity))
  );
  return {
    lastIndex: failing - 1,
    count: code.length,
    first: ordered ? counts[0] : null,
    last: ordered ? counts[counts.length - 1] : null
  };
}
