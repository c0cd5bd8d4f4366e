/**
 * What is going on with a kernel, as one "incident" per kernel event: a warning that may turn
 * into a halt, then an end, then the kernel running again. Pure state transitions (tested with
 * jest); the model applies them to events and polls, the notices and cells are views of them.
 */
import { usedBytes } from './format';
import { IKernelInfo, ITermination } from './types';

export type Phase =
  /** the kernel crossed the warning line */
  | 'warning'
  /** memguard is halting it (interrupt, then shutdown, then kill) */
  | 'halting'
  /** memory went back down (after a warning, or after the interrupt of a halt) */
  | 'recovered'
  /** the kernel ended (a termination is known) */
  | 'ended'
  /** the kernel of that notebook is running again after the end */
  | 'back'
  /** the kernel survived; a note about it (a child OOM-killed, a GPU OOM error) */
  | 'note'
  /** nothing to show any more (e.g. the user shut the kernel down) */
  | 'closed';

export type SaveState = 'saving' | 'saved' | 'failed' | null;

export interface IIncident {
  /** Unique per kernel event: one notification each. */
  readonly key: string;
  readonly kernelId: string;
  readonly path: string | null;
  readonly phase: Phase;
  /** Client time (ms) the incident started and last changed. */
  readonly since: number;
  readonly updatedAt: number;
  readonly usageBytes: number | null;
  readonly limitBytes: number | null;
  readonly warnBytes: number | null;
  readonly haltBytes: number | null;
  /** The kernel's memory when it last recovered. */
  readonly currentBytes: number | null;
  readonly dryRun: boolean;
  /** Client time (ms) of the kernel_halting event. */
  readonly haltingAt: number | null;
  /** The last halt step reported (interrupt, restart, shutdown, kill). */
  readonly step: string | null;
  /** Stopped on request (the Memory panel, an administrator), not for its memory. */
  readonly admin: boolean;
  readonly termination: ITermination | null;
  /** The notebook's save after the halt. */
  readonly saved: SaveState;
  /** The running cell got memguard's note. */
  readonly marked: boolean;
  /** Restored from an earlier page (persisted, not dismissed). */
  readonly restored: boolean;
  /** Client time (ms) a notice first showed the kernel as stopped. */
  readonly stoppedShownAt: number | null;
}

/** Verdicts after which there is nothing to tell (the user did it). */
export const QUIET_VERDICTS = new Set([
  'user_shutdown',
  'user_restart',
  'server_shutdown'
]);

/** Verdicts where the kernel survived. */
export const SURVIVED_VERDICTS = new Set([
  'child_oom_killed',
  'gpu_out_of_memory'
]);

/** The journal's id of a termination as a key ("t12"), or one made from its kernel and time. */
export function terminationKey(t: ITermination): string {
  if (t.id !== null && t.id !== undefined) {
    return `t${t.id}`;
  }
  return `k${t.kernel_id}@${Math.round(t.ended_at ?? 0)}:${t.verdict}`;
}

let counter = 0;

export function newIncident(
  kernelId: string,
  now: number,
  fields: Partial<IIncident> = {}
): IIncident {
  counter += 1;
  return {
    key: `${kernelId}#${now}#${counter}`,
    kernelId,
    path: null,
    phase: 'warning',
    since: now,
    updatedAt: now,
    usageBytes: null,
    limitBytes: null,
    warnBytes: null,
    haltBytes: null,
    currentBytes: null,
    dryRun: false,
    haltingAt: null,
    step: null,
    admin: false,
    termination: null,
    saved: null,
    marked: false,
    restored: false,
    stoppedShownAt: null,
    ...fields
  };
}

/** Whether an incident still follows its kernel (a new event of the kernel joins it). */
export function isActive(incident: IIncident | null | undefined): boolean {
  return (
    !!incident && (incident.phase === 'warning' || incident.phase === 'halting')
  );
}

function update(
  incident: IIncident,
  now: number,
  fields: Partial<IIncident>
): IIncident {
  return { ...incident, ...fields, updatedAt: now };
}

export interface IMemoryEventData {
  kernel_id: string;
  path?: string | null;
  usage_bytes?: number | null;
  limit_bytes?: number | null;
  dry_run?: boolean;
  step?: string;
  /** The first halt step (kernel_halting): interrupt, restart, kill; shutdown for an admin. */
  action?: string;
  reason?: string;
}

/** Whether a kernel_halting event is a stop on request rather than for memory. */
export function isAdminHalt(data: IMemoryEventData): boolean {
  return (
    data.action === 'shutdown' ||
    /memory panel|administrator/i.test(data.reason ?? '')
  );
}

/**
 * The notebook and the lines an event of the kernel gives: its path and limit, else the
 * incident's, with the warn and stop lines at those fractions of the limit.
 */
function eventFigures(
  current: IIncident | null,
  data: IMemoryEventData,
  fractions: { warn: number; halt: number }
): Pick<IIncident, 'path' | 'limitBytes' | 'warnBytes' | 'haltBytes'> {
  const limit = data.limit_bytes ?? current?.limitBytes ?? null;
  return {
    path: data.path ?? current?.path ?? null,
    limitBytes: limit,
    warnBytes: limit ? Math.round(limit * fractions.warn) : null,
    haltBytes: limit ? Math.round(limit * fractions.halt) : null
  };
}

/** A memory_warning: a new incident, or an update of the one under way. */
export function onWarning(
  current: IIncident | null,
  data: IMemoryEventData,
  now: number,
  fractions: { warn: number; halt: number }
): IIncident {
  const fields: Partial<IIncident> = {
    ...eventFigures(current, data, fractions),
    usageBytes: data.usage_bytes ?? null
  };
  if (current && isActive(current)) {
    // A halt under way stays a halt; a repeated warning only refreshes the figures.
    return current.phase === 'halting'
      ? current
      : update(current, now, { ...fields, phase: 'warning' });
  }
  return newIncident(data.kernel_id, now, { ...fields, phase: 'warning' });
}

/** A kernel_halting: the warning (if any) turns into a halt. */
export function onHalting(
  current: IIncident | null,
  data: IMemoryEventData,
  now: number,
  fractions: { warn: number; halt: number }
): IIncident {
  const fields: Partial<IIncident> = {
    ...eventFigures(current, data, fractions),
    phase: 'halting',
    usageBytes: data.usage_bytes ?? current?.usageBytes ?? null,
    dryRun: Boolean(data.dry_run),
    haltingAt: now,
    step: null,
    admin: isAdminHalt(data)
  };
  if (current && isActive(current)) {
    return update(current, now, fields);
  }
  return newIncident(data.kernel_id, now, fields);
}

/** A kernel_halted step (interrupt, restart, shutdown, kill). */
export function onHaltStep(
  current: IIncident | null,
  data: IMemoryEventData,
  now: number
): IIncident | null {
  if (!current || current.phase !== 'halting') {
    return current;
  }
  return update(current, now, {
    step: data.step ?? current.step,
    usageBytes: data.usage_bytes ?? current.usageBytes
  });
}

/**
 * A kernel_terminated (or a journal row): the incident under way ends with it, or a new one
 * starts. Returns null when there is nothing to show (the user did it, and nothing was under
 * way). A note (the kernel survived) is always an incident of its own.
 */
export function onTerminated(
  current: IIncident | null,
  t: ITermination,
  now: number
): IIncident | null {
  if (QUIET_VERDICTS.has(t.verdict)) {
    return current && isActive(current)
      ? update(current, now, { phase: 'closed', termination: t })
      : null;
  }
  if (SURVIVED_VERDICTS.has(t.verdict)) {
    return newIncident(t.kernel_id, now, {
      phase: 'note',
      path: t.path,
      termination: t
    });
  }
  const fields: Partial<IIncident> = {
    phase: 'ended',
    termination: t,
    path: t.path ?? current?.path ?? null
  };
  if (current && (isActive(current) || current.phase === 'recovered')) {
    if (current.phase === 'recovered' && now - current.updatedAt > 60000) {
      return newIncident(t.kernel_id, now, fields);
    }
    return update(current, now, fields);
  }
  return newIncident(t.kernel_id, now, fields);
}

/** Whether the kernel of an ended incident is running again, from the server's kernel list. */
export function kernelBack(
  incident: IIncident,
  kernels: ReadonlyArray<IKernelInfo>
): IKernelInfo | null {
  const t = incident.termination;
  if (!t) {
    return null;
  }
  const endedAt = t.ended_at ?? 0;
  const path = t.path ?? incident.path;
  for (const kernel of kernels) {
    const running =
      kernel.execution_state === 'idle' || kernel.execution_state === 'busy';
    if (!running) {
      continue;
    }
    if (kernel.id === t.kernel_id) {
      // The same id again: restarted in place (automatic restart after a death).
      const sampled = kernel.memory?.sampled_at ?? 0;
      if (sampled > endedAt + 0.5) {
        return kernel;
      }
    } else if (path && kernel.path === path) {
      // A new kernel for the same notebook.
      return kernel;
    }
  }
  return null;
}

/**
 * Apply a poll of the server's kernels: a warning or a halt whose memory went back down has
 * recovered; an ended kernel that runs again is back. `graceMs` is how long memguard waits
 * after an interrupt before it shuts a kernel down.
 */
export function onKernels(
  incident: IIncident,
  kernels: ReadonlyArray<IKernelInfo>,
  now: number,
  graceMs: number
): IIncident {
  const kernel = kernels.find(k => k.id === incident.kernelId) ?? null;
  const rss = kernel?.memory ? usedBytes(kernel.memory) : null;
  const warn = kernel?.warn_bytes ?? incident.warnBytes;
  switch (incident.phase) {
    case 'warning':
      if (rss !== null && warn && rss < warn) {
        return update(incident, now, { phase: 'recovered', currentBytes: rss });
      }
      return incident;
    case 'halting': {
      if (rss === null || !warn || incident.haltingAt === null) {
        return incident;
      }
      const escalated =
        incident.step === 'shutdown' || incident.step === 'kill';
      // A dry run does nothing: it has recovered as soon as memory is back down.
      const waited =
        incident.dryRun || now - incident.haltingAt > graceMs + 1500;
      if (!escalated && waited && rss < warn) {
        return update(incident, now, { phase: 'recovered', currentBytes: rss });
      }
      return incident;
    }
    case 'ended':
      return kernelBack(incident, kernels)
        ? update(incident, now, { phase: 'back' })
        : incident;
    default:
      return incident;
  }
}
