/**
 * Every text memguard shows, in plain words first (what happened, what it means, what to do)
 * and evidence second. Pure functions of their inputs (tested with jest); all strings go
 * through the translation bundle given (JupyterLab's `trans.__`).
 *
 * JupyterLab cuts notification messages at 140 characters, so notices are built to fit:
 * a headline, then as many of the plain sentences as fit (the last one says what to do).
 */
import { IBar, ISegment } from './breakdown';
import {
  basename,
  formatBytes,
  formatDuration,
  formatPercent,
  formatSeconds,
  formatSignedBytes,
  formatUsage,
  usedBytes
} from './format';
import { IIncident } from './incidents';
import { cellLabel } from './timeline';
import {
  IBudget,
  ICellRecord,
  IGpuDeviceStatus,
  IGpuHolder,
  IGpuPressure,
  IKernelInfo,
  IKernelMemory,
  IOtherProcess,
  IPressure,
  IStatusSettings,
  ITermination,
  Units
} from './types';

/** The part of JupyterLab's TranslationBundle used here. */
export interface ITrans {
  __(msgid: string, ...args: any[]): string;
  _n(msgid: string, msgidPlural: string, n: number, ...args: any[]): string;
}

function substitute(text: string, args: any[]): string {
  return text.replace(/%(\d+)/g, (match, n) =>
    Number(n) >= 1 && Number(n) <= args.length
      ? String(args[Number(n) - 1])
      : match
  );
}

/** A bundle that only fills in %1, %2… (no translation). */
export const plainTrans: ITrans = {
  __: (msgid, ...args) => substitute(msgid, args),
  _n: (msgid, plural, n, ...args) =>
    substitute(n === 1 ? msgid : plural, [n, ...args])
};

/** The longest message a JupyterLab notification shows uncut. */
export const MAX_NOTICE_LENGTH = 140;

export type NoticeType = 'warning' | 'error' | 'info' | 'success';
export type NoticeAction =
  | 'interrupt'
  | 'save'
  | 'panel'
  | 'details'
  | 'restart'
  | 'dismiss'
  | 'stopIdle';

export interface INoticeView {
  message: string;
  type: NoticeType;
  autoClose: number | false;
  actions: NoticeAction[];
  /** Keep it across page reloads until it is dismissed. */
  persist: boolean;
}

export interface ITextContext {
  trans: ITrans;
  units: Units;
}

export interface INoticeContext extends ITextContext {
  /** Client time in ms. */
  now: number;
  /** A notebook of this kernel is open on this page (it can be saved, restarted). */
  notebookOpen: boolean;
}

/** The sentences of a text ("A. B? C." → ["A.", "B?", "C."]). */
export function sentences(text: string): string[] {
  return text
    .trim()
    .split(/(?<=[.!?…])\s+/)
    .filter(s => s.length > 0);
}

/**
 * "headline\nbody" within `max` characters: the first headline that fits, then all the
 * sentences, or the first and the last, or the last (what to do), or the first.
 */
export function compose(
  headlines: string[],
  body: string[],
  max: number = MAX_NOTICE_LENGTH
): string {
  const choices: string[][] = [body];
  if (body.length > 2) {
    choices.push([body[0], body[body.length - 1]]);
  }
  if (body.length > 1) {
    choices.push([body[body.length - 1]], [body[0]]);
  }
  choices.push([]);
  for (const choice of choices) {
    for (const headline of headlines) {
      const text = choice.length
        ? `${headline}\n${choice.join(' ')}`
        : headline;
      if (text.length <= max) {
        return text;
      }
    }
  }
  const last = headlines[headlines.length - 1] ?? '';
  return last.length <= max ? last : `${last.slice(0, max - 1)}…`;
}

function named(
  path: string | null,
  withName: (name: string) => string,
  withoutName: string
): string[] {
  const name = basename(path);
  return name ? [withName(name), withoutName] : [withoutName];
}

// ---------------------------------------------------------------------------------------
// Terminations
// ---------------------------------------------------------------------------------------

function stoppedFromPanel(t: ITermination): boolean {
  const reason = String(t.evidence?.intent_reason ?? '');
  return (
    t.evidence?.intent === 'admin_halt' ||
    /memory panel|administrator|admin\b/i.test(reason)
  );
}

function sureOom(t: ITermination): boolean {
  return t.confidence === 'confirmed' || t.confidence === 'high';
}

/** The short title of a termination: the server's headline, else one made here. */
export function terminationHeadline(t: ITermination, trans: ITrans): string {
  if (t.headline) {
    return t.headline;
  }
  switch (t.verdict) {
    case 'halted_by_memguard':
      return stoppedFromPanel(t)
        ? trans.__('Kernel stopped from the Memory panel')
        : trans.__('Kernel stopped: out of memory');
    case 'oom_killed':
      return sureOom(t)
        ? trans.__('Kernel stopped: out of memory')
        : trans.__('Kernel stopped: probably out of memory');
    case 'killed_externally':
      return trans.__('Kernel stopped by another program');
    case 'crashed':
      return trans.__('Kernel crashed');
    case 'exited':
      return trans.__('Kernel exited');
    case 'culled_idle':
      return trans.__('Kernel shut down: it was idle');
    case 'child_oom_killed':
      return trans.__('A kernel process ran out of memory');
    case 'gpu_out_of_memory':
      return trans.__('A cell ran out of GPU memory');
    case 'user_shutdown':
      return trans.__('Kernel shut down by a user');
    case 'user_restart':
      return trans.__('Kernel restarted by a user');
    case 'server_shutdown':
      return trans.__('Kernel ended with the server');
    default:
      return trans.__('Kernel stopped');
  }
}

/** Plain sentences about a termination: the server's summary, else made here. */
export function terminationSummary(t: ITermination, ctx: ITextContext): string {
  if (t.summary) {
    return t.summary;
  }
  const { trans, units } = ctx;
  const e = t.evidence ?? {};
  const last = e.last_rss_bytes || e.peak_rss_bytes || null;
  const peak = e.peak_rss_bytes || e.last_rss_bytes || null;
  const limit = e.limit_bytes || null;
  const lost = trans.__('Its variables are lost; restart the kernel to go on.');
  switch (t.verdict) {
    case 'halted_by_memguard':
      if (stoppedFromPanel(t)) {
        return `${trans.__('Someone stopped this kernel from the Memory panel.')} ${lost}`;
      }
      return [
        peak && limit
          ? trans.__(
              'memguard stopped the kernel when it used %1 of its %2 limit, before the system ran out of memory.',
              formatBytes(peak, units),
              formatBytes(limit, units)
            )
          : trans.__(
              'memguard stopped the kernel because it used too much memory.'
            ),
        trans.__(
          'Its variables are lost; restart the kernel and run the cells again, with less data.'
        )
      ].join(' ');
    case 'oom_killed': {
      const figures =
        last && limit
          ? trans.__(
              'It used %1 of its %2 limit.',
              formatBytes(last, units),
              formatBytes(limit, units)
            )
          : '';
      return [
        sureOom(t)
          ? trans.__('The system ran out of memory and killed the kernel.')
          : trans.__(
              'The kernel was killed, most likely because memory ran out.'
            ),
        figures,
        trans.__(
          'Its variables are lost; restart the kernel and use less data.'
        )
      ]
        .filter(Boolean)
        .join(' ');
    }
    case 'killed_externally':
      return `${trans.__(
        'Another program ended the kernel (%1); nothing shows that memory was the cause.',
        e.exit_signal ?? 'SIGKILL'
      )} ${lost}`;
    case 'crashed':
      return `${trans.__(
        'The kernel crashed (%1): a bug in the kernel or a library, not a memory limit.',
        e.exit_signal ?? trans.__('a signal')
      )} ${lost}`;
    case 'exited':
      return `${trans.__(
        'The kernel process exited with code %1.',
        e.exit_code ?? '?'
      )} ${lost}`;
    case 'culled_idle':
      return `${trans.__(
        'memguard shut the kernel down because it was idle, to free memory.'
      )} ${lost}`;
    case 'child_oom_killed':
      return trans.__(
        'The system killed a process started by the kernel, for lack of memory. The kernel itself is still running.'
      );
    case 'gpu_out_of_memory': {
      const held =
        typeof e.gpu_last_bytes === 'number' && e.gpu_last_bytes > 0
          ? trans.__(
              'The kernel is still running and holds %1 of GPU memory.',
              formatBytes(e.gpu_last_bytes, units)
            )
          : trans.__('The kernel is still running.');
      return `${trans.__('A cell failed: the GPU ran out of memory.')} ${held} ${trans.__(
        'Free GPU memory or use smaller batches.'
      )}`;
    }
    case 'user_shutdown':
      return trans.__('A user shut the kernel down.');
    case 'user_restart':
      return trans.__('A user restarted the kernel.');
    case 'server_shutdown':
      return trans.__('The kernel ended when the Jupyter server stopped.');
    default:
      return t.explanation || trans.__('The kernel ended.');
  }
}

function terminationType(t: ITermination): 'error' | 'warning' | 'info' {
  switch (t.verdict) {
    case 'culled_idle':
    case 'user_shutdown':
    case 'user_restart':
    case 'server_shutdown':
      return 'info';
    case 'child_oom_killed':
    case 'gpu_out_of_memory':
      return 'warning';
    default:
      return 'error';
  }
}

/** Evidence of a termination, for its Details view: [label, value] pairs. */
export function evidenceLines(
  t: ITermination,
  ctx: ITextContext
): [string, string][] {
  const { trans, units } = ctx;
  const e = t.evidence ?? {};
  const lines: [string, string][] = [
    [trans.__('Verdict'), t.verdict],
    [trans.__('Certainty'), t.confidence]
  ];
  if (t.explanation) {
    lines.push([trans.__('memguard found'), t.explanation]);
  }
  if (e.exit_signal) {
    lines.push([trans.__('Ended by signal'), String(e.exit_signal)]);
  }
  if (e.exit_code !== null && e.exit_code !== undefined) {
    lines.push([trans.__('Exit code'), String(e.exit_code)]);
  }
  if (e.last_rss_bytes) {
    lines.push([
      trans.__('Memory at the end'),
      formatBytes(e.last_rss_bytes, units)
    ]);
  }
  if (e.peak_rss_bytes) {
    lines.push([trans.__('Peak memory'), formatBytes(e.peak_rss_bytes, units)]);
  }
  if (e.limit_bytes) {
    const source = e.limit_source
      ? ` (${limitSourceText(String(e.limit_source), trans)})`
      : '';
    lines.push([
      trans.__('Limit'),
      `${formatBytes(e.limit_bytes, units)}${source}`
    ]);
  }
  if (
    typeof e.oom_kill_before === 'number' ||
    typeof e.oom_kill_after === 'number'
  ) {
    lines.push([
      trans.__('Out-of-memory kills counted (before → after)'),
      `${e.oom_kill_before ?? '?'} → ${e.oom_kill_after ?? '?'}`
    ]);
  }
  if (e.intent_reason) {
    lines.push([trans.__('Reason memguard recorded'), String(e.intent_reason)]);
  }
  if (typeof e.gpu_last_bytes === 'number') {
    lines.push([
      trans.__('GPU memory at the end'),
      formatBytes(e.gpu_last_bytes, units)
    ]);
  }
  if (typeof e.gpu_peak_bytes === 'number') {
    lines.push([
      trans.__('GPU memory peak'),
      formatBytes(e.gpu_peak_bytes, units)
    ]);
  }
  if (Array.isArray(e.kmsg_lines) && e.kmsg_lines.length) {
    lines.push([trans.__('Kernel log'), e.kmsg_lines.join('\n')]);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------
// Limits, budget and kernel state
// ---------------------------------------------------------------------------------------

/** Where a limit comes from, in words. */
export function limitSourceText(source: string, trans: ITrans): string {
  switch (source) {
    case 'kernel_memory_limit':
      return trans.__("memguard's limit for each kernel (kernel_memory_limit)");
    case 'config':
      return trans.__("memguard's memory limit for this server (memory_limit)");
    case 'cgroup_v1':
    case 'cgroup_v2':
      return trans.__("the container's memory limit");
    case 'spawner_mem_limit':
      return trans.__("JupyterHub's memory limit for this server");
    case 'host':
      return trans.__("the machine's total memory");
    default:
      return source.replace(/_/g, ' ');
  }
}

/** "memguard warns at 80 % (480 MiB) and stops the kernel at 90 % (540 MiB)." */
export function linesText(
  kernel: Pick<IKernelInfo, 'warn_bytes' | 'halt_bytes' | 'limit_bytes'>,
  settings: IStatusSettings | null | undefined,
  ctx: ITextContext
): string {
  const { trans, units } = ctx;
  const limit = kernel.limit_bytes;
  const warnPct = formatPercent(
    limit ? kernel.warn_bytes / limit : (settings?.warn_fraction ?? 0.8)
  );
  const haltPct = formatPercent(
    limit ? kernel.halt_bytes / limit : (settings?.halt_fraction ?? 0.9)
  );
  const warn = formatBytes(kernel.warn_bytes, units);
  const halt = formatBytes(kernel.halt_bytes, units);
  if (settings && !settings.guard_enabled) {
    return trans.__(
      'memguard warns at %1 (%2); it does not stop kernels on this server (its guard is off).',
      warnPct,
      warn
    );
  }
  if (settings?.dry_run) {
    return trans.__(
      'memguard warns at %1 (%2) and would stop the kernel at %3 (%4), but here it only reports it (dry run).',
      warnPct,
      warn,
      haltPct,
      halt
    );
  }
  return trans.__(
    'memguard warns at %1 (%2) and stops the kernel at %3 (%4).',
    warnPct,
    warn,
    haltPct,
    halt
  );
}

/** The warn and stop lines of every kernel, as fractions of its limit. */
export function fractionsText(
  settings: IStatusSettings | null | undefined,
  trans: ITrans
): string {
  const warn = formatPercent(settings?.warn_fraction ?? 0.8);
  const halt = formatPercent(settings?.halt_fraction ?? 0.9);
  if (settings && !settings.guard_enabled) {
    return trans.__(
      'memguard warns when a kernel reaches %1 of its limit; it does not stop kernels on this server.',
      warn
    );
  }
  if (settings?.dry_run) {
    return trans.__(
      'memguard warns when a kernel reaches %1 of its limit and would stop it at %2 (dry run: it only reports).',
      warn,
      halt
    );
  }
  return trans.__(
    'memguard warns when a kernel reaches %1 of its limit and stops it at %2, before the system runs out of memory.',
    warn,
    halt
  );
}

/** "This server's memory: 1.5 GiB used of 24 GiB (the whole machine, all programs)". */
export function budgetText(budget: IBudget, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const used = formatBytes(budget.usage_bytes, units);
  const limit = formatBytes(budget.limit_bytes, units);
  switch (budget.limit_source) {
    case 'host':
      return trans.__(
        "This server's memory: %1 used of %2 (the whole machine, all programs counted)",
        used,
        limit
      );
    case 'cgroup_v1':
    case 'cgroup_v2':
      return trans.__(
        "This server's memory: %1 used of %2 (its container's limit: the server, its kernels and terminals)",
        used,
        limit
      );
    case 'spawner_mem_limit':
      return trans.__(
        "This server's memory: %1 used of %2 (JupyterHub's limit: this server and its kernels)",
        used,
        limit
      );
    case 'config':
      return trans.__(
        "This server's memory: %1 used of %2 (memguard's memory_limit: this server and its kernels)",
        used,
        limit
      );
    default:
      return trans.__("This server's memory: %1 used of %2", used, limit);
  }
}

/** "Running code", "Idle for 12 s", "Starting". */
export function kernelStateText(
  kernel: Pick<IKernelInfo, 'execution_state' | 'idle_seconds'>,
  trans: ITrans
): string {
  switch (kernel.execution_state) {
    case 'busy':
      return trans.__('Running code');
    case 'idle':
      return kernel.idle_seconds >= 1
        ? trans.__('Idle for %1', formatDuration(kernel.idle_seconds))
        : trans.__('Idle');
    case 'starting':
      return trans.__('Starting');
    case 'restarting':
    case 'autorestarting':
      return trans.__('Restarting');
    case 'dead':
      return trans.__('Stopped');
    default:
      return trans.__('State: %1', kernel.execution_state);
  }
}

/** "54 MiB of 600 MiB (9 %)". */
export function usageText(
  used: number,
  limit: number,
  ctx: ITextContext
): string {
  return ctx.trans.__(
    '%1 of %2 (%3)',
    formatBytes(used, ctx.units),
    formatBytes(limit, ctx.units),
    formatPercent(limit ? used / limit : 0)
  );
}

/** The text of the status-bar item for a measured kernel: "Mem 54 / 600 MiB". */
export function statusText(used: number, limit: number, units: Units): string {
  return `Mem ${formatUsage(used, limit, units)}`;
}

/** The confirmation before a halt from the Memory panel. */
export function haltConfirmation(
  kernel: Pick<IKernelInfo, 'path' | 'name' | 'id' | 'memory'>,
  ctx: ITextContext
): { title: string; body: string; button: string } {
  const { trans, units } = ctx;
  const what = kernel.path
    ? trans.__('The kernel of %1', kernel.path)
    : trans.__('The kernel %1 (%2)', kernel.name, kernel.id.slice(0, 8));
  const size = kernel.memory
    ? trans.__(', which uses %1,', formatBytes(usedBytes(kernel.memory), units))
    : '';
  return {
    title: trans.__('Stop this kernel?'),
    body: trans.__(
      '%1%2 will be shut down now. All its variables, and the result of any cell still running, are lost; the notebook itself is kept. Restart the kernel to go on.',
      what,
      size
    ),
    button: trans.__('Stop the kernel')
  };
}

// ---------------------------------------------------------------------------------------
// Notices (one per incident) and the halted cell's note
// ---------------------------------------------------------------------------------------

function figuresOf(incident: IIncident, ctx: ITextContext) {
  const u = ctx.units;
  const limit = incident.limitBytes;
  return {
    pastLine:
      incident.usageBytes !== null &&
      incident.haltBytes !== null &&
      incident.usageBytes >= incident.haltBytes,
    usage: formatBytes(incident.usageBytes, u),
    limit: formatBytes(limit, u),
    halt: formatBytes(incident.haltBytes, u),
    usagePct: formatPercent(
      limit && incident.usageBytes !== null ? incident.usageBytes / limit : NaN
    ),
    haltPct: formatPercent(
      limit && incident.haltBytes !== null ? incident.haltBytes / limit : NaN
    ),
    known:
      incident.usageBytes !== null && !!limit && incident.haltBytes !== null
  };
}

/** The notification for an incident, or null when there is none (closed). */
export function noticeFor(
  incident: IIncident,
  ctx: INoticeContext
): INoticeView | null {
  const { trans } = ctx;
  const f = figuresOf(incident, ctx);
  const path = incident.termination?.path ?? incident.path;
  switch (incident.phase) {
    case 'warning': {
      const body = f.known
        ? [
            trans.__(
              'Its kernel uses %1 of %2 (%3).',
              f.usage,
              f.limit,
              f.usagePct
            ),
            trans.__(
              'memguard stops it at %1: save your work, or free memory.',
              f.halt
            )
          ]
        : [trans.__('Save your work, or free memory.')];
      return {
        message: compose(
          named(
            path,
            n => trans.__('Memory high in %1', n),
            trans.__('Kernel memory high')
          ),
          body
        ),
        type: 'warning',
        autoClose: false,
        actions: ctx.notebookOpen
          ? ['interrupt', 'save', 'panel']
          : ['interrupt', 'panel'],
        persist: false
      };
    }
    case 'halting': {
      if (incident.dryRun) {
        return {
          message: compose(
            named(
              path,
              n => trans.__('Dry run: memguard would stop the kernel of %1', n),
              trans.__('Dry run: memguard would stop a kernel')
            ),
            [
              f.known
                ? trans.__(
                    'It uses %1, past its stop line of %2 (%3 of %4).',
                    f.usage,
                    f.halt,
                    f.haltPct,
                    f.limit
                  )
                : '',
              trans.__('Nothing is done.')
            ].filter(Boolean)
          ),
          type: 'warning',
          autoClose: 15000,
          actions: ['panel'],
          persist: false
        };
      }
      const escalated =
        !incident.admin &&
        (incident.step === 'shutdown' || incident.step === 'kill');
      const headlines = escalated
        ? named(
            path,
            n => trans.__('memguard is shutting down the kernel of %1', n),
            trans.__('memguard is shutting down a kernel')
          )
        : named(
            path,
            n => trans.__('memguard is stopping the kernel of %1', n),
            trans.__('memguard is stopping a kernel')
          );
      const body: string[] = [];
      if (incident.admin) {
        body.push(trans.__('Someone stopped it from the Memory panel.'));
      } else if (!f.pastLine && f.known) {
        body.push(
          trans.__('It used %1 while the server was short of memory.', f.usage)
        );
      } else if (escalated) {
        body.push(
          f.known
            ? trans.__(
                'The interrupt did not free its memory (%1, stop line %2).',
                f.usage,
                f.halt
              )
            : trans.__('The interrupt did not free its memory.')
        );
      } else if (f.known) {
        body.push(
          trans.__(
            'It used %1, past its stop line of %2 (%3 of %4).',
            f.usage,
            f.halt,
            f.haltPct,
            f.limit
          )
        );
      }
      if (ctx.notebookOpen && incident.saved !== 'saved') {
        body.push(trans.__('Saving the notebook…'));
      }
      return {
        message: compose(headlines, body),
        type: 'warning',
        autoClose: false,
        actions: ['panel'],
        persist: false
      };
    }
    case 'recovered': {
      const now = formatBytes(incident.currentBytes, ctx.units);
      if (incident.haltingAt !== null && !incident.dryRun) {
        return {
          message: compose(
            named(
              path,
              n => trans.__('memguard interrupted a cell of %1', n),
              trans.__('memguard interrupted a cell')
            ),
            [
              f.known && f.pastLine
                ? trans.__(
                    'Its kernel used %1, past its stop line of %2.',
                    f.usage,
                    f.halt
                  )
                : '',
              trans.__(
                'The kernel is still running (now %1) and keeps its variables.',
                now
              )
            ].filter(Boolean)
          ),
          type: 'warning',
          autoClose: 15000,
          actions: ['panel'],
          persist: false
        };
      }
      return {
        message: compose(
          named(
            path,
            n => trans.__('Memory back down in %1', n),
            trans.__('Kernel memory back down')
          ),
          [trans.__('Its kernel now uses %1 of %2.', now, f.limit)]
        ),
        type: 'info',
        autoClose: 5000,
        actions: [],
        persist: false
      };
    }
    case 'ended':
    case 'back':
    case 'note': {
      const t = incident.termination;
      if (!t) {
        return null;
      }
      const headline = terminationHeadline(t, trans);
      const name = basename(path);
      const headlines = name ? [`${headline} (${name})`, headline] : [headline];
      if (incident.phase === 'note') {
        return {
          message: compose(headlines, sentences(terminationSummary(t, ctx))),
          type: 'warning',
          autoClose: t.verdict === 'gpu_out_of_memory' ? 10000 : false,
          actions: ['details', 'dismiss'],
          persist: false
        };
      }
      if (incident.phase === 'back') {
        const seen =
          incident.stoppedShownAt !== null &&
          ctx.now - incident.stoppedShownAt >= 5000;
        // What happened (the summary's first sentence), then how things stand now.
        const happened = sentences(terminationSummary(t, ctx)).slice(0, 1);
        return {
          message: compose(headlines, [
            ...happened,
            trans.__(
              'The kernel is running again; its variables were lost, so run your cells again.'
            )
          ]),
          type: 'info',
          autoClose: seen ? 15000 : false,
          actions: ['details', 'dismiss'],
          persist: false
        };
      }
      const summary = sentences(terminationSummary(t, ctx));
      let message = compose(headlines, summary);
      // The advice, as the line that says what to do, where it fits.
      if (t.advice) {
        const advised = compose(headlines, [...summary, t.advice]);
        if (advised.includes(t.advice)) {
          message = advised;
        }
      }
      const saved = trans.__('The notebook was saved.');
      if (
        incident.saved === 'saved' &&
        message.length + saved.length + 1 <= MAX_NOTICE_LENGTH
      ) {
        message = `${message} ${saved}`;
      }
      return {
        message,
        type: terminationType(t),
        autoClose: false,
        actions: ctx.notebookOpen
          ? ['restart', 'details', 'dismiss']
          : ['details', 'dismiss'],
        persist: true
      };
    }
    default:
      return null;
  }
}

/**
 * The note added to the output of the cell that was running when memguard halted its kernel.
 * `kernelEnded`: the kernel was shut down (else the interrupt was enough and it runs on).
 */
export function cellNote(
  incident: IIncident,
  kernelEnded: boolean,
  ctx: ITextContext
): string {
  const { trans } = ctx;
  const f = figuresOf(incident, ctx);
  if (incident.admin) {
    return `${trans.__('memguard stopped this cell:')} ${trans.__(
      'the kernel was stopped from the Memory panel.'
    )} ${trans.__(
      'Its variables are lost; restart the kernel and run the cells again.'
    )}`;
  }
  const what =
    f.known && f.pastLine
      ? trans.__(
          'the kernel used %1, past its stop line of %2 (%3 of its %4 limit).',
          f.usage,
          f.halt,
          f.haltPct,
          f.limit
        )
      : f.known
        ? trans.__(
            'the kernel used %1 while the server was short of memory.',
            f.usage
          )
        : trans.__('the kernel used too much memory.');
  if (kernelEnded) {
    return `${trans.__('memguard stopped this cell:')} ${what} ${trans.__(
      'Its variables are lost; restart the kernel and run the cells again, with less data.'
    )}`;
  }
  return `${trans.__('memguard interrupted this cell:')} ${what} ${trans.__(
    'The kernel is still running and keeps its variables; free memory (del large variables) or use less data before you run this cell again.'
  )}`;
}

/** The openings of memguard's cell notes (so a note is not added twice). */
export function cellNotePrefixes(trans: ITrans): string[] {
  return [
    trans.__('memguard stopped this cell:'),
    trans.__('memguard interrupted this cell:')
  ];
}

// ---------------------------------------------------------------------------------------
// How a kernel's memory is counted, and who holds the budget
// ---------------------------------------------------------------------------------------

/** How a kernel's figure was measured, when it is not plain RSS; else null. */
export function memoryMethodText(
  memory: IKernelMemory,
  ctx: ITextContext
): string | null {
  const { trans, units } = ctx;
  switch (memory.method) {
    case 'pss':
      return trans.__(
        'Measured as PSS: shared pages counted once (its processes’ RSS adds up to %1).',
        formatBytes(memory.rss_bytes, units)
      );
    case 'usage_request':
      return trans.__(
        'As the kernel reports it: memguard cannot see its processes.'
      );
    default:
      return null;
  }
}

/** A kernel's name in lists: its notebook's file name, else "Kernel 1a2b3c4d". */
export function kernelLabel(
  path: string | null | undefined,
  kernelId: string,
  trans: ITrans
): string {
  return basename(path) ?? trans.__('Kernel %1', kernelId.slice(0, 8));
}

/** The legend's name of a segment of the budget bar (`kernelName` names kernels). */
export function segmentLabel(
  segment: Pick<ISegment, 'kind' | 'id'>,
  trans: ITrans,
  kernelName: (kernelId: string) => string
): string {
  switch (segment.kind) {
    case 'kernel':
      return kernelName(segment.id ?? '');
    case 'server':
      return trans.__('Jupyter server');
    case 'terminal':
      return trans.__('Terminal %1', segment.id ?? '');
    case 'others':
      return trans.__('Other programs');
    case 'cache':
      return trans.__('File cache');
    case 'shmem':
      return trans.__('Shared memory');
    case 'unattributed':
      return trans.__('Other system memory');
    case 'free':
    default:
      return trans.__('Free');
  }
}

/** What a segment of the budget bar is, in one sentence. */
export function segmentHint(
  segment: Pick<ISegment, 'kind'>,
  trans: ITrans
): string {
  switch (segment.kind) {
    case 'kernel':
      return trans.__(
        'A notebook’s kernel, with the processes it started; shared pages counted once where measured.'
      );
    case 'server':
      return trans.__('The Jupyter server itself, with its extensions.');
    case 'terminal':
      return trans.__(
        'A terminal of this server and the programs running in it.'
      );
    case 'others':
      return trans.__(
        'Programs outside Jupyter that count against this limit.'
      );
    case 'cache':
      return trans.__(
        'Files read or written recently, kept in memory by the system; it counts against the limit.'
      );
    case 'shmem':
      return trans.__(
        'Shared memory and files kept in memory (/dev/shm, tmpfs).'
      );
    case 'unattributed':
      return trans.__(
        'Memory the system uses for this limit that no process accounts for.'
      );
    case 'free':
    default:
      return trans.__('What is left before the limit.');
  }
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** "`python train.py` — pid 4242, alice, terminal 1: 1.6 GiB". */
export function otherProcessText(
  p: IOtherProcess,
  ctx: ITextContext,
  maxCommand = 80
): string {
  const { trans, units } = ctx;
  const command = shorten((p.cmdline || p.name || '?').trim(), maxCommand);
  const where = p.terminal
    ? trans.__('pid %1, %2, terminal %3', p.pid, p.user, p.terminal)
    : trans.__('pid %1, %2', p.pid, p.user);
  return trans.__('`%1` — %2: %3', command, where, formatBytes(p.bytes, units));
}

/** A note when the parts of the bar add up to more than the usage (else null). */
export function overcountedText(bar: IBar, ctx: ITextContext): string | null {
  if (bar.overcountedBytes < Math.max(bar.usageBytes * 0.02, 1)) {
    return null;
  }
  return ctx.trans.__(
    'The parts add up to %1 more than the memory in use: programs that share memory are each counted with it. The bar shows them to scale within the use.',
    formatBytes(bar.overcountedBytes, ctx.units)
  );
}

/** "GPU 0 (NVIDIA A100): 30 GiB of 40 GiB used (75 %)". */
export function gpuDeviceText(
  device: IGpuDeviceStatus,
  ctx: ITextContext
): string {
  return ctx.trans.__(
    'GPU %1 (%2): %3 used',
    device.index,
    device.name,
    usageText(device.used_bytes, device.total_bytes, ctx)
  );
}

// ---------------------------------------------------------------------------------------
// Pressure from outside the kernels, and on a GPU
// ---------------------------------------------------------------------------------------

/** The notice for memory held outside the kernels (the server names the process). */
export function pressureNotice(
  data: IPressure,
  ctx: ITextContext
): INoticeView {
  const { trans, units } = ctx;
  const headline = trans.__('Memory is short outside your notebooks');
  let main: string;
  // The server's words end without a full stop ("…uses 1.6 GiB of the 2 GiB limit").
  const given = /[.!?…]$/.test(data.message.trim())
    ? data.message.trim()
    : `${data.message.trim()}.`;
  if (data.message && given.length <= MAX_NOTICE_LENGTH) {
    main = given;
  } else if (data.culprit) {
    const size = formatBytes(data.culprit.bytes, units);
    const limit = formatBytes(data.limit_bytes, units);
    const where = data.culprit.terminal
      ? trans.__('pid %1, terminal %2', data.culprit.pid, data.culprit.terminal)
      : trans.__('pid %1', data.culprit.pid);
    const sentence = (command: string) =>
      trans.__(
        '`%1` (%2) uses %3 of the %4 limit.',
        command,
        where,
        size,
        limit
      );
    const room =
      MAX_NOTICE_LENGTH - sentence('').length - (headline.length + 1);
    const command = (data.culprit.cmdline || data.culprit.name || '?').trim();
    main = sentence(shorten(command, Math.max(16, room)));
  } else {
    main = trans.__(
      'This server uses %1 of %2.',
      formatBytes(data.usage_bytes, units),
      formatBytes(data.limit_bytes, units)
    );
  }
  let message = `${headline}\n${main}`;
  if (message.length > MAX_NOTICE_LENGTH) {
    message = main.length <= MAX_NOTICE_LENGTH ? main : compose([headline], []);
  }
  const spared = trans.__('memguard stops no kernel for it.');
  if (message.length + spared.length + 1 <= MAX_NOTICE_LENGTH) {
    message = `${message} ${spared}`;
  }
  return {
    message,
    type: 'warning',
    autoClose: false,
    actions: ['panel'],
    persist: false
  };
}

/** The same notice once the budget is back under its warning line. */
export function pressureReliefNotice(
  budget: Pick<IBudget, 'usage_bytes' | 'limit_bytes'>,
  ctx: ITextContext
): INoticeView {
  return {
    message: ctx.trans.__(
      'Memory is no longer short: this server uses %1 of %2.',
      formatBytes(budget.usage_bytes, ctx.units),
      formatBytes(budget.limit_bytes, ctx.units)
    ),
    type: 'info',
    autoClose: 8000,
    actions: [],
    persist: false
  };
}

/** The holders a user may stop to free the GPU: idle, and not culled already. */
export function stoppableHolders(data: Pick<IGpuPressure, 'holders'>) {
  return (data.holders ?? []).filter(h => h.idle && !h.culled);
}

function holderName(h: Pick<IGpuHolder, 'path' | 'kernel_id'>): string {
  return basename(h.path) ?? h.kernel_id.slice(0, 8);
}

/** "a.ipynb (3 GiB, idle), b.ipynb (2 GiB, running)", the first `max` and "and 2 more". */
export function holderList(
  holders: ReadonlyArray<IGpuHolder>,
  ctx: ITextContext,
  max = holders.length
): string {
  const { trans, units } = ctx;
  const items = holders
    .slice(0, Math.max(1, max))
    .map(h =>
      trans.__(
        '%1 (%2, %3)',
        holderName(h),
        formatBytes(h.bytes, units),
        h.culled
          ? trans.__('shut down')
          : h.idle
            ? trans.__('idle')
            : trans.__('running')
      )
    );
  const more = holders.length - items.length;
  return more > 0
    ? trans.__('%1 and %2 more', items.join(', '), more)
    : items.join(', ');
}

/**
 * The notice for a cell that ran out of GPU memory while other notebooks hold that GPU,
 * naming them; with "Stop idle notebooks…" where the user may stop the idle ones.
 */
export function gpuPressureNotice(
  data: IGpuPressure,
  ctx: ITextContext & { canStop: boolean }
): INoticeView {
  const { trans } = ctx;
  const sorted = [...(data.holders ?? [])].sort((a, b) => b.bytes - a.bytes);
  const culled = sorted.filter(h => h.culled);
  const stoppable = stoppableHolders(data);
  const headlines = named(
    data.path,
    n => trans.__('GPU %1 is full: a cell of %2 failed', data.device, n),
    trans.__('GPU %1 is full: a cell failed', data.device)
  );
  const bodies: string[][] = [];
  for (let max = sorted.length; max >= 1; max--) {
    if (culled.length) {
      bodies.push([
        trans.__(
          'memguard shut down %1 to make room.',
          holderList(culled, ctx, max)
        ),
        trans.__('Run the cell again.')
      ]);
    } else {
      bodies.push([
        trans.__('Other notebooks hold it: %1.', holderList(sorted, ctx, max)),
        ctx.canStop && stoppable.length
          ? trans.__('Stop the idle ones to free it.')
          : trans.__('Ask their owners to free it.')
      ]);
    }
  }
  let message = '';
  for (const body of bodies) {
    for (const headline of headlines) {
      const text = `${headline}\n${body.join(' ')}`;
      if (!message && text.length <= MAX_NOTICE_LENGTH) {
        message = text;
      }
    }
  }
  if (!message) {
    message = compose(
      headlines,
      sentences(data.message || trans.__('Other notebooks hold its memory.'))
    );
  }
  return {
    message,
    type: 'warning',
    autoClose: false,
    actions:
      ctx.canStop && stoppable.length && !culled.length
        ? ['stopIdle', 'panel']
        : ['panel'],
    persist: false
  };
}

/** The question before idle notebooks are stopped to free a GPU. */
export function gpuStopConfirmation(
  holders: ReadonlyArray<IGpuHolder>,
  ctx: ITextContext
): { title: string; body: string; button: string } {
  const { trans, units } = ctx;
  const n = holders.length;
  const total = holders.reduce((sum, h) => sum + h.bytes, 0);
  return {
    title: trans._n('Stop %1 idle notebook?', 'Stop %1 idle notebooks?', n),
    body: trans._n(
      'The kernel of %2 will be shut down to free %3 of GPU memory. All its variables are lost; the notebook itself is kept, and its owner can run it again later.',
      'The kernels of %2 will be shut down to free %3 of GPU memory. All their variables are lost; the notebooks themselves are kept, and their owners can run them again later.',
      n,
      holders.map(holderName).join(', '),
      formatBytes(total, units)
    ),
    button: trans._n('Stop the kernel', 'Stop the kernels', n)
  };
}

/** After the idle notebooks were stopped (or some could not be). */
export function gpuStoppedNotice(
  stopped: ReadonlyArray<IGpuHolder>,
  failed: ReadonlyArray<IGpuHolder>,
  ctx: ITextContext
): INoticeView {
  const { trans } = ctx;
  const parts: string[] = [];
  if (stopped.length) {
    parts.push(
      trans._n(
        'Stopped %2: its GPU memory is being freed.',
        'Stopped %2: their GPU memory is being freed.',
        stopped.length,
        stopped.map(holderName).join(', ')
      )
    );
  }
  if (failed.length) {
    parts.push(
      trans.__('Could not stop %1.', failed.map(holderName).join(', '))
    );
  }
  parts.push(trans.__('Run your cell again.'));
  return {
    message: compose([trans.__('GPU memory')], parts),
    type: failed.length ? 'warning' : 'success',
    autoClose: 10000,
    actions: [],
    persist: false
  };
}

// ---------------------------------------------------------------------------------------
// Cells: badges and the timeline
// ---------------------------------------------------------------------------------------

/** How a cell ended, in words. */
export function cellStatusText(cell: ICellRecord, trans: ITrans): string {
  switch (cell.status) {
    case 'running':
      return trans.__('Still running');
    case 'ok':
      return trans.__('Finished');
    case 'error':
      return cell.ename
        ? trans.__('Failed with %1', cell.ename)
        : trans.__('Failed with an error');
    case 'interrupted':
      return trans.__('Interrupted');
    case 'kernel_died':
      return trans.__('The kernel ended while it ran');
    default:
      return String(cell.status);
  }
}

/** The text of a cell's badge: "+3.6 GiB · peak 4.1 GiB" ("≈" for a cell run back-to-back). */
export function badgeText(cell: ICellRecord, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const approx = cell.overlapped ? '≈' : '';
  const peak = cell.peak_bytes ?? null;
  const delta = cell.delta_bytes ?? null;
  if (delta === null && peak === null) {
    return '';
  }
  if (delta === null) {
    return trans.__('%1peak %2', approx, formatBytes(peak, units));
  }
  if (peak === null) {
    return `${approx}${formatSignedBytes(delta, units)}`;
  }
  return trans.__(
    '%1%2 · peak %3',
    approx,
    formatSignedBytes(delta, units),
    formatBytes(peak, units)
  );
}

/** The hover text of a badge: the figures in a sentence, and what a click does. */
export function badgeTitle(cell: ICellRecord, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const parts = [
    trans.__(
      'Cell %1 changed its kernel’s memory by %2 (%3 → %4); it peaked at %5 and took %6.',
      cellLabel(cell),
      formatSignedBytes(cell.delta_bytes, units),
      formatBytes(cell.memory_before_bytes, units),
      formatBytes(cell.memory_after_bytes, units),
      formatBytes(cell.peak_bytes, units),
      formatSeconds(cell.duration_s)
    )
  ];
  if (cell.overlapped) {
    parts.push(
      trans.__(
        'It ran right behind another cell, so part of that cell’s memory may be counted here.'
      )
    );
  }
  parts.push(trans.__('Click for the memory timeline.'));
  return parts.join(' ');
}

/** A cell's figures for the timeline: [label, value] pairs. */
export function cellFigures(
  cell: ICellRecord,
  ctx: ITextContext
): [string, string][] {
  const { trans, units } = ctx;
  const lines: [string, string][] = [
    [trans.__('Before'), formatBytes(cell.memory_before_bytes, units)],
    [
      trans.__('Change'),
      cell.status === 'running'
        ? trans.__('still running')
        : formatSignedBytes(cell.delta_bytes, units)
    ],
    [trans.__('Peak'), formatBytes(cell.peak_bytes, units)],
    [
      trans.__('Took'),
      cell.status === 'running'
        ? trans.__('still running')
        : formatSeconds(cell.duration_s)
    ],
    [trans.__('Status'), cellStatusText(cell, trans)]
  ];
  if (cell.overlapped) {
    lines.push([
      trans.__('Note'),
      trans.__(
        'It ran right behind another cell: the figures may include part of that cell.'
      )
    ]);
  }
  return lines;
}

/** The timeline's key to its lines: "Limit 600 MiB · warns at 480 MiB · stops at 540 MiB". */
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
