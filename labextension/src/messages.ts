/**
 * Plain-language texts for what happened to a kernel (pure, tested with jest).
 *
 * JupyterLab cuts notification messages at 140 characters, so each text is built to fit:
 * the notebook's name is added only where there is room.
 */
import { formatBytes } from './format';
import { ITermination, Units } from './types';

export type NoticeType = 'error' | 'warning' | 'info';

/** The longest message a JupyterLab notification shows uncut. */
export const MAX_NOTICE_LENGTH = 140;

export interface INotice {
  /** The text shown in the notification. */
  message: string;
  /** Notification type. */
  type: NoticeType;
  /** Sticky notices stay until dismissed. */
  sticky: boolean;
}

/** "<lead> (<name>)<rest>" when it fits, else "<lead><rest>". */
export function fit(lead: string, name: string | null, rest: string): string {
  const named = name ? `${lead} (${name})${rest}` : `${lead}${rest}`;
  return named.length <= MAX_NOTICE_LENGTH ? named : `${lead}${rest}`;
}

function basename(path: string | null): string | null {
  return path ? (path.split('/').pop() ?? path) : null;
}

function figures(
  used: number | null | undefined,
  limit: number | null | undefined,
  units: Units
): string {
  if (used === null || used === undefined || !limit) {
    return '';
  }
  return `${formatBytes(used, units)} of a ${formatBytes(limit, units)} limit`;
}

/** The notice for a kernel termination, or null where none is needed (user actions). */
export function terminationNotice(
  t: ITermination,
  units: Units = 'decimal'
): INotice | null {
  const e = t.evidence;
  const name = basename(t.path);
  const last = figures(
    e.last_rss_bytes ?? e.peak_rss_bytes,
    e.limit_bytes,
    units
  );
  const peak = figures(
    e.peak_rss_bytes ?? e.last_rss_bytes,
    e.limit_bytes,
    units
  );
  switch (t.verdict) {
    case 'user_shutdown':
    case 'user_restart':
    case 'server_shutdown':
      return null;
    case 'halted_by_memguard':
      return {
        message: fit(
          'Kernel halted by memguard',
          name,
          `${peak ? `: it reached ${peak}` : ''}. The notebook was saved; restart the kernel to go on.`
        ),
        type: 'error',
        sticky: true
      };
    case 'culled_idle':
      return {
        message: fit(
          'Kernel shut down because it was idle',
          name,
          '. Restart the kernel to go on.'
        ),
        type: 'info',
        sticky: true
      };
    case 'oom_killed': {
      const sure = t.confidence === 'confirmed' || t.confidence === 'high';
      const lead = sure
        ? 'Kernel terminated — out of memory'
        : 'Kernel terminated — likely out of memory';
      return {
        message: fit(
          lead,
          name,
          last ? `: it used ${last} when the system killed it.` : '.'
        ),
        type: 'error',
        sticky: true
      };
    }
    case 'child_oom_killed':
      return {
        message: fit(
          'A process of the kernel was killed for lack of memory',
          name,
          '; the kernel itself is still running.'
        ),
        type: 'warning',
        sticky: true
      };
    case 'gpu_out_of_memory': {
      const held =
        typeof e.gpu_last_bytes === 'number' && e.gpu_last_bytes > 0
          ? ` It holds ${formatBytes(e.gpu_last_bytes, units)} of GPU memory.`
          : '';
      return {
        message: fit(
          'A cell ran out of GPU memory',
          name,
          `; the kernel is still running.${held}`
        ),
        type: 'warning',
        sticky: false
      };
    }
    case 'killed_externally':
      return {
        message: fit(
          'Kernel killed by another process (SIGKILL)',
          name,
          '; nothing suggests memory was the cause.'
        ),
        type: 'error',
        sticky: true
      };
    case 'crashed':
      return {
        message: fit(
          `Kernel crashed with ${e.exit_signal ?? 'a signal'}`,
          name,
          ': a bug in the kernel or a library, not a memory limit.'
        ),
        type: 'error',
        sticky: true
      };
    case 'exited':
      return {
        message: fit(
          `Kernel exited with code ${e.exit_code ?? '?'}`,
          name,
          '.'
        ),
        type: 'error',
        sticky: true
      };
    default: {
      const text = fit('Kernel terminated', name, `: ${t.explanation}`);
      return {
        message:
          text.length <= MAX_NOTICE_LENGTH
            ? text
            : `${text.slice(0, MAX_NOTICE_LENGTH - 1)}…`,
        type: 'error',
        sticky: true
      };
    }
  }
}

/** The warning when a kernel crosses the warning fraction of its limit. */
export function warningText(
  path: string | null,
  usageBytes: number,
  limitBytes: number,
  units: Units = 'decimal'
): string {
  const percent = limitBytes ? Math.round((usageBytes / limitBytes) * 100) : 0;
  return fit(
    'Kernel memory high',
    basename(path),
    `: ${formatBytes(usageBytes, units)}, ${percent}% of its ${formatBytes(limitBytes, units)} limit. It will be halted if it grows.`
  );
}

/** The warning just before memguard halts a kernel. */
export function haltingText(path: string | null, dryRun: boolean): string {
  if (dryRun) {
    return fit(
      'memguard would halt a kernel now',
      basename(path),
      ' (dry run: nothing is done).'
    );
  }
  return fit(
    'memguard is halting a kernel',
    basename(path),
    ' that uses too much memory; saving the notebook.'
  );
}
