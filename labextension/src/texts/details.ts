/**
 * The texts of the Details view: how a figure was measured (named only here, in plain words,
 * as the server's `memory.method` says), where the cells' times come from, a record's
 * evidence, and the key to the timeline's lines.
 */
import { formatBytes } from '../format';
import { ITermination, ITrigger } from '../model/types';
import { ITextContext, ITrans } from './common';
import { limitSourceText } from './status';

/** How the kernel's figure is measured, in a plain sentence (the server's `method`). */
export function methodText(method: string, trans: ITrans): string {
  switch (method) {
    case 'cgroup':
      return trans.__(
        'Memory here is that of the kernel’s own memory group (cgroup): everything its processes use, each page counted once.'
      );
    case 'pss':
      return trans.__(
        'Memory here is added up over the kernel’s processes, each page they share counted once (PSS).'
      );
    case 'rss':
      return trans.__(
        'Memory here is the resident memory (RSS) of the kernel’s processes, as sampled: a page they share is counted once per process.'
      );
    case 'usage_request':
      return trans.__(
        'Memory here is what the kernel reports about itself: memguard cannot see its processes.'
      );
    default:
      return trans.__('Memory here is measured as “%1”.', method);
  }
}

/** Where the cells' start and end come from (the kernel's `cells_source`). */
export function cellsSourceText(
  source: 'agent' | 'iopub' | null,
  trans: ITrans
): string | null {
  switch (source) {
    case 'agent':
      return trans.__(
        'Cells are timed from inside the kernel, exactly as they start and end.'
      );
    case 'iopub':
      return trans.__(
        'Cells are timed from the kernel’s messages: cells queued back to back may share their figures (marked ≈).'
      );
    default:
      return null;
  }
}

/** The footnote of the Details view: times, the method (when known), the cells' figures. */
export function detailsFootnote(
  method: string | null,
  cellsSource: 'agent' | 'iopub' | null,
  trans: ITrans
): string {
  return [
    trans.__('Times are the server’s.'),
    method === null ? null : methodText(method, trans),
    trans.__(
      'Each cell shows the memory before it ran, its change, and its own peak above where it started.'
    ),
    cellsSourceText(cellsSource, trans)
  ]
    .filter(Boolean)
    .join(' ');
}

/** The line a trigger crossed, in words ("its stop line, 540 MiB"), or ''. */
function lineText(trigger: ITrigger, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const size =
    trigger.line_bytes !== null ? formatBytes(trigger.line_bytes, units) : null;
  switch (trigger.line) {
    case 'warn':
      return size
        ? trans.__('its warn line, %1', size)
        : trans.__('its warn line');
    case 'halt':
      return size
        ? trans.__('its stop line, %1', size)
        : trans.__('its stop line');
    case 'kill':
      return size
        ? trans.__('its kill line, %1', size)
        : trans.__('its kill line');
    default:
      return size ?? '';
  }
}

/**
 * Why memguard acted, from the record's structured trigger, in plain words ("this server's
 * memory was almost full (its stop line, 922 MiB)"); an unknown kind is shown as it is.
 */
export function triggerText(trigger: ITrigger, ctx: ITextContext): string {
  const { trans } = ctx;
  const line = lineText(trigger, ctx);
  const at = line ? ` (${line})` : '';
  switch (trigger.kind) {
    case 'kernel_limit':
      return trans.__('the kernel reached its own memory limit%1', at);
    case 'budget':
      return trans.__('this server’s memory was almost full%1', at);
    case 'idle':
      return trans.__('the kernel was idle for too long');
    case 'idle_pressure':
      return trans.__('memory was short and the kernel was idle');
    case 'admin':
      return trans.__(
        'someone asked memguard to stop it (Memory panel or API)'
      );
    case 'outside':
      return trans.__('memory outside the notebooks was short%1', at);
    case 'gpu_pressure':
      return trans.__('another notebook needed the GPU memory it held');
    case 'jupyter_server_culler':
      return trans.__('the Jupyter server’s idle culler');
    default:
      return `${trigger.kind}${at}`;
  }
}

/** Evidence of a record, for its Details view: [label, value] pairs. */
export function evidenceLines(
  t: ITermination,
  ctx: ITextContext
): [string, string][] {
  const { trans, units } = ctx;
  const e = t.evidence;
  const lines: [string, string][] = [
    [trans.__('Verdict'), t.verdict],
    [trans.__('Certainty'), t.confidence]
  ];
  const add = (label: string, value: string | null): void => {
    if (value !== null && value !== '') {
      lines.push([label, value]);
    }
  };
  const size = (bytes: number | null): string | null =>
    bytes === null ? null : formatBytes(bytes, units);
  add(trans.__('memguard found'), t.explanation);
  if (t.trigger) {
    add(trans.__('Why memguard acted'), triggerText(t.trigger, ctx));
  }
  add(trans.__('Ended by signal'), e.exit_signal);
  add(trans.__('Exit code'), e.exit_code === null ? null : String(e.exit_code));
  add(trans.__('Memory at the end'), size(e.last_rss_bytes));
  add(trans.__('Peak memory'), size(e.peak_rss_bytes));
  if (e.limit_bytes !== null) {
    // "1 GiB · the container's memory limit" (the source may have parentheses of its own).
    const source = e.limit_source
      ? ` · ${limitSourceText(e.limit_source, trans)}`
      : '';
    add(trans.__('Limit'), `${formatBytes(e.limit_bytes, units)}${source}`);
  }
  if (e.oom_kill_before !== null || e.oom_kill_after !== null) {
    add(
      trans.__('Out-of-memory kills counted (before → after)'),
      `${e.oom_kill_before ?? '?'} → ${e.oom_kill_after ?? '?'}`
    );
  }
  add(trans.__('GPU memory at the end'), size(e.gpu_last_bytes));
  add(trans.__('GPU memory peak'), size(e.gpu_peak_bytes));
  if (e.kmsg_lines.length) {
    add(trans.__('Kernel log'), e.kmsg_lines.join('\n'));
  }
  return lines;
}

/** The timeline's key to its lines: "limit 600 MiB · memguard warns at 480 MiB · …". */
export function timelineLinesText(
  lines: ReadonlyArray<{ kind: string; bytes: number }>,
  ctx: ITextContext
): string {
  const { trans, units } = ctx;
  return lines
    .map(line => {
      const size = formatBytes(line.bytes, units);
      switch (line.kind) {
        case 'limit':
          return trans.__('limit %1', size);
        case 'warn':
          return trans.__('memguard warns at %1', size);
        case 'halt':
        default:
          return trans.__('stops the kernel at %1', size);
      }
    })
    .join(' · ');
}
