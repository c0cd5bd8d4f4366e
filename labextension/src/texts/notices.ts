/**
 * The notice of each incident (one per incident, updated in place): the server's headline,
 * summary and advice as they are, with the notebook's name; the few words of our own say
 * what the page itself did or saw (saving, memory back down, the kernel running again).
 * JupyterLab cuts notices at 140 characters, so each is composed to fit.
 */
import { formatBytes } from '../format';
import { IIncident } from '../model/incidents';
import { IGpuHolder, Severity } from '../model/types';
import {
  basename,
  compose,
  headlines,
  ITextContext,
  ITrans,
  MAX_NOTICE_LENGTH,
  sentences
} from './common';

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

export interface INoticeContext extends ITextContext {
  /** Client time in ms. */
  now: number;
  /** A notebook of this kernel is open on this page (it can be saved, restarted). */
  notebookOpen: boolean;
  /** The user may stop other kernels (write permission on memguard). */
  canStop: boolean;
}

function typeOf(severity: Severity | undefined): NoticeType {
  return severity ?? 'warning';
}

/** The headline and the summary, with the advice after it where all of it fits. */
function told(heads: string[], summary: string, advice: string | null): string {
  const body = sentences(summary);
  if (advice) {
    const advised = compose(heads, [...body, advice]);
    if (advised.endsWith([...body, advice].join(' '))) {
      return advised;
    }
  }
  return compose(heads, body);
}

/** The GPU holders a user may stop to free the GPU: the idle ones memguard left running. */
export function stoppableHolders(
  holders: ReadonlyArray<IGpuHolder>
): IGpuHolder[] {
  return holders.filter(h => h.idle && !h.culled);
}

function holderName(h: Pick<IGpuHolder, 'path' | 'kernel_id'>): string {
  return basename(h.path) ?? h.kernel_id.slice(0, 8);
}

/** What "Stop idle notebooks…" did, in sentences. */
function gpuStopText(
  stop: { stopped: IGpuHolder[]; failed: IGpuHolder[] },
  trans: ITrans
): string[] {
  const parts: string[] = [];
  if (stop.stopped.length) {
    parts.push(
      trans._n(
        'Stopped %2: its GPU memory is being freed.',
        'Stopped %2: their GPU memory is being freed.',
        stop.stopped.length,
        stop.stopped.map(holderName).join(', ')
      )
    );
  }
  if (stop.failed.length) {
    parts.push(
      trans.__('Could not stop %1.', stop.failed.map(holderName).join(', '))
    );
  }
  parts.push(trans.__('Run your cell again.'));
  return parts;
}

/** The kernel survived: interrupted and kept, a child killed, a GPU out of memory. */
function keptNotice(incident: IIncident, ctx: INoticeContext): INoticeView {
  const w = incident.words;
  const heads = headlines(w?.headline ?? '', incident.path);
  const details: NoticeAction[] = incident.termination ? ['details'] : [];
  if (incident.gpu) {
    const stop = incident.gpuStop;
    const stoppable = stoppableHolders(incident.gpu.holders);
    return {
      message: stop
        ? compose(heads, gpuStopText(stop, ctx.trans))
        : told(heads, w?.summary ?? '', w?.advice ?? null),
      type: stop
        ? stop.failed.length
          ? 'warning'
          : 'success'
        : typeOf(w?.severity),
      autoClose: stop ? 10000 : false,
      actions:
        !stop && ctx.canStop && stoppable.length
          ? ['stopIdle', 'panel', ...details]
          : ['panel', ...details],
      persist: false
    };
  }
  return {
    message: told(heads, w?.summary ?? '', w?.advice ?? null),
    type: typeOf(w?.severity),
    autoClose: w?.severity === 'info' ? 10000 : false,
    actions: ['panel', ...details, 'dismiss'],
    persist: false
  };
}

/** The notice of an incident, or null when there is none to show. */
export function noticeFor(
  incident: IIncident,
  ctx: INoticeContext
): INoticeView | null {
  const { trans, units } = ctx;
  const w = incident.words;
  const path = incident.termination?.path ?? incident.path;
  const heads = headlines(w?.headline ?? '', path);
  switch (incident.phase) {
    case 'warning':
      return w
        ? {
            message: compose(heads, sentences(w.summary)),
            type: typeOf(w.severity),
            autoClose: false,
            actions: ctx.notebookOpen
              ? ['interrupt', 'save', 'panel']
              : ['interrupt', 'panel'],
            persist: false
          }
        : null;
    case 'halting': {
      if (!w) {
        return null;
      }
      const saving =
        !incident.dryRun && ctx.notebookOpen && incident.saved !== 'saved'
          ? [trans.__('Saving the notebook…')]
          : [];
      // Why memguard acts (the headline), then what it does now: its last step, if any.
      const now = incident.stepWords?.summary ?? w.summary;
      return {
        message: compose(heads, [...sentences(now), ...saving]),
        type: typeOf(w.severity),
        autoClose: incident.dryRun ? 15000 : false,
        actions: ['panel'],
        persist: false
      };
    }
    case 'recovered': {
      const name = basename(path);
      return {
        message: compose(
          name
            ? [trans.__('Memory back down in %1', name)]
            : [trans.__('Kernel memory back down')],
          [
            trans.__(
              'Its kernel now uses %1 of %2.',
              formatBytes(incident.currentBytes, units),
              formatBytes(incident.limitBytes, units)
            )
          ]
        ),
        type: 'info',
        autoClose: 5000,
        actions: [],
        persist: false
      };
    }
    case 'ended': {
      if (!w) {
        return null;
      }
      const saved =
        incident.saved === 'saved' ? [trans.__('The notebook was saved.')] : [];
      let message = told(heads, w.summary, w.advice);
      if (
        saved.length &&
        message.length + saved[0].length < MAX_NOTICE_LENGTH
      ) {
        message = `${message} ${saved[0]}`;
      }
      return {
        message,
        type: typeOf(w.severity),
        autoClose: false,
        actions: ctx.notebookOpen
          ? ['restart', 'details', 'dismiss']
          : ['details', 'dismiss'],
        persist: true
      };
    }
    case 'back': {
      if (!w) {
        return null;
      }
      const seen =
        incident.stoppedShownAt !== null &&
        ctx.now - incident.stoppedShownAt >= 5000;
      // What happened (the summary's first sentence), then how things stand now.
      return {
        message: compose(heads, [
          ...sentences(w.summary).slice(0, 1),
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
    case 'kept':
      return keptNotice(incident, ctx);
    case 'earlier':
      return w
        ? {
            message: told(heads, w.summary, w.advice),
            type: typeOf(w.severity),
            autoClose: false,
            actions: ['details', 'dismiss'],
            persist: false
          }
        : null;
    case 'pressure':
      return w
        ? {
            // Who holds the memory (the first sentence) matters more than the headline.
            message: compose(
              w.headline ? [w.headline] : [],
              sentences(w.summary),
              MAX_NOTICE_LENGTH,
              'first'
            ),
            type: typeOf(w.severity),
            autoClose: false,
            actions: ['panel'],
            persist: false
          }
        : null;
    case 'relieved':
      return {
        message: trans.__(
          'Memory is no longer short: this server uses %1 of %2.',
          formatBytes(incident.usageBytes, units),
          formatBytes(incident.limitBytes, units)
        ),
        type: 'info',
        autoClose: 8000,
        actions: [],
        persist: false
      };
    default:
      return null;
  }
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

/** Which cells "Restart and run" runs again: the code cells above the one that failed. */
export interface IRunRange {
  /** The index (in the notebook) of the last cell to run: the one above the failing cell. */
  readonly lastIndex: number;
  /** How many code cells that runs. */
  readonly count: number;
  /** The prompts' execution counts of the first and last of them, when they are in order. */
  readonly first: number | null;
  readonly last: number | null;
}

/** The restart button's label: "Restart and run cells [1]–[6] again", or a plain restart. */
export function restartLabel(range: IRunRange | null, trans: ITrans): string {
  if (!range) {
    return trans.__('Restart the kernel');
  }
  if (range.first !== null && range.last !== null) {
    return range.count === 1
      ? trans.__('Restart and run cell [%1] again', range.first)
      : trans.__(
          'Restart and run cells [%1]–[%2] again',
          range.first,
          range.last
        );
  }
  return trans._n(
    'Restart and run the cell above again',
    'Restart and run the %1 cells above again',
    range.count
  );
}

/** What the restart button does, in one sentence (its caption). */
export function restartCaption(range: IRunRange | null, trans: ITrans): string {
  return range
    ? trans.__(
        'Start the kernel again and run the cells above the one that was running when it stopped (that one is not run)'
      )
    : trans.__('Start the kernel again (its variables are gone)');
}
