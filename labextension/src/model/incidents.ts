/**
 * What is going on, as one "incident" per kernel event (a warning that may turn into a halt,
 * then an end or an interrupt the kernel survived, then the kernel running again), plus the
 * server's memory pressure. Pure state transitions (jest-tested): the book applies them to
 * events and polls; the notices, the status item and the cells are views of them. Every
 * incident carries the server's words for its latest event or record, as they are.
 */
import {
  ICulledEvent,
  IGpuPressureEvent,
  IHaltedEvent,
  IHaltingEvent,
  IPressureEvent,
  IWarningEvent
} from './events';
import {
  IBudget,
  IGpuHolder,
  IKernel,
  ITermination,
  ITrigger,
  IWords
} from './types';

export type Phase =
  /** the kernel crossed its warn line (memory_warning) */
  | 'warning'
  /** memguard is stopping it (kernel_halting, kernel_culled) */
  | 'halting'
  /** its memory went back under the warn line, and no record says more */
  | 'recovered'
  /** a record: the kernel is gone */
  | 'ended'
  /** the notebook's kernel is running again after the end */
  | 'back'
  /** the kernel survived (interrupted and kept, a child killed, a GPU out of memory) */
  | 'kept'
  /** a server_died record, shown once when its notebook is opened */
  | 'earlier'
  /** the server's memory is short because of processes outside the notebooks */
  | 'pressure'
  /** …and is no longer short */
  | 'relieved'
  /** nothing to show any more (the user did it) */
  | 'closed';

export type SaveState = 'saving' | 'saved' | 'failed' | null;

/** What "Stop idle notebooks…" did, for the GPU notice. */
export interface IGpuStop {
  stopped: IGpuHolder[];
  failed: IGpuHolder[];
}

export interface IIncident {
  /** Unique per incident: one notice each. */
  readonly key: string;
  /** null for memory pressure (about no kernel). */
  readonly kernelId: string | null;
  readonly path: string | null;
  readonly phase: Phase;
  /** Client time (ms) it started and last changed. */
  readonly since: number;
  readonly updatedAt: number;
  /** The server's words for the latest event or record. */
  readonly words: IWords | null;
  readonly usageBytes: number | null;
  readonly limitBytes: number | null;
  readonly warnBytes: number | null;
  /** The kernel's memory when it went back down. */
  readonly currentBytes: number | null;
  readonly dryRun: boolean;
  /** Client time (ms) memguard started to stop it. */
  readonly haltingAt: number | null;
  /** The last halt step reported (interrupt, restart, shutdown, kill). */
  readonly step: string | null;
  /** The server's words for that step (what memguard does now); `words` keep the why. */
  readonly stepWords: IWords | null;
  readonly trigger: ITrigger | null;
  readonly termination: ITermination | null;
  /** The GPU pressure event of a failed cell (other notebooks hold that GPU). */
  readonly gpu: IGpuPressureEvent | null;
  readonly gpuStop: IGpuStop | null;
  /** The notebook's save after a halt. */
  readonly saved: SaveState;
  /** The running cell got memguard's note. */
  readonly marked: boolean;
  /** Restored from an earlier page (kept until dismissed). */
  readonly restored: boolean;
  /** Client time (ms) a notice first showed the kernel as stopped. */
  readonly stoppedShownAt: number | null;
}

/** How long a record or a GPU event joins the incident before it (ms). */
export const JOIN_MS = 60000;

/** The journal's id of a record as a key ("t12"), or one made from its kernel and time. */
export function terminationKey(t: ITermination): string {
  if (t.id !== null) {
    return `t${t.id}`;
  }
  return `k${t.kernel_id}@${Math.round(t.ended_at ?? 0)}:${t.verdict}`;
}

let counter = 0;

export function newIncident(
  kernelId: string | null,
  now: number,
  fields: Partial<IIncident> = {}
): IIncident {
  counter += 1;
  return {
    key: `${kernelId ?? 'server'}#${now}#${counter}`,
    kernelId,
    path: null,
    phase: 'warning',
    since: now,
    updatedAt: now,
    words: null,
    usageBytes: null,
    limitBytes: null,
    warnBytes: null,
    currentBytes: null,
    dryRun: false,
    haltingAt: null,
    step: null,
    stepWords: null,
    trigger: null,
    termination: null,
    gpu: null,
    gpuStop: null,
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

function recent(incident: IIncident, now: number): boolean {
  return now - incident.updatedAt <= JOIN_MS;
}

/** A memory_warning: a new incident, or an update of the one under way. */
export function onWarning(
  current: IIncident | null,
  ev: IWarningEvent,
  now: number
): IIncident {
  const fields: Partial<IIncident> = {
    phase: 'warning',
    path: ev.path ?? current?.path ?? null,
    words: ev.words,
    usageBytes: ev.usage_bytes,
    limitBytes: ev.limit_bytes ?? current?.limitBytes ?? null,
    warnBytes: ev.warn_bytes ?? current?.warnBytes ?? null,
    trigger: ev.trigger
  };
  if (current && isActive(current)) {
    // A halt under way stays a halt.
    return current.phase === 'halting' ? current : update(current, now, fields);
  }
  return newIncident(ev.kernel_id, now, fields);
}

/** A kernel_halting or kernel_culled: memguard is stopping the kernel (or would: dry run). */
export function onHalting(
  current: IIncident | null,
  ev: IHaltingEvent | ICulledEvent,
  now: number
): IIncident {
  const fields: Partial<IIncident> = {
    phase: 'halting',
    path: ev.path ?? current?.path ?? null,
    words: ev.words,
    usageBytes: ev.usage_bytes ?? current?.usageBytes ?? null,
    limitBytes:
      ('limit_bytes' in ev ? ev.limit_bytes : null) ??
      current?.limitBytes ??
      null,
    dryRun: ev.dry_run,
    haltingAt: now,
    step: null,
    stepWords: null,
    trigger: ev.trigger
  };
  if (current && isActive(current)) {
    return update(current, now, fields);
  }
  return newIncident(ev.kernel_id, now, fields);
}

/**
 * A kernel_halted step (interrupt, restart, shutdown, kill): the halt goes on. The halt's
 * words (why memguard acts) stay; the step's say what it does now.
 */
export function onHaltStep(
  current: IIncident | null,
  ev: IHaltedEvent,
  now: number
): IIncident | null {
  if (!current || current.phase !== 'halting') {
    return current;
  }
  return update(current, now, {
    step: ev.step,
    stepWords: ev.words,
    words: current.words ?? ev.words,
    usageBytes: ev.usage_bytes ?? current.usageBytes
  });
}

/**
 * A record (kernel_terminated, or the journal): the incident it belongs to, updated, or a new
 * one; null when there is nothing to tell (a quiet verdict with nothing under way).
 * `current` is the kernel's incident under way, `side` its last "kept" one.
 */
export function onTerminated(
  current: IIncident | null,
  side: IIncident | null,
  t: ITermination,
  now: number,
  quiet: boolean
): IIncident | null {
  if (quiet) {
    return current && isActive(current)
      ? update(current, now, { phase: 'closed', termination: t })
      : null;
  }
  const path = t.path ?? current?.path ?? null;
  const halted =
    !!current &&
    (current.phase === 'halting' ||
      (current.phase === 'recovered' &&
        current.haltingAt !== null &&
        recent(current, now)));
  if (t.survived) {
    // The GPU notice already tells of this failure: its record joins it, its words stay.
    // (Only a GPU failure's: an interrupt the kernel survived is a notice of its own.)
    if (
      t.verdict === 'gpu_out_of_memory' &&
      side?.gpu &&
      !side.termination &&
      recent(side, now)
    ) {
      return update(side, now, { termination: t });
    }
    const fields = { phase: 'kept' as const, termination: t, words: t.words };
    return halted && current
      ? update(current, now, { ...fields, path })
      : newIncident(t.kernel_id, now, { ...fields, path });
  }
  const fields = {
    phase: 'ended' as const,
    termination: t,
    words: t.words,
    path
  };
  if (
    current &&
    (isActive(current) ||
      (current.phase === 'recovered' && recent(current, now)))
  ) {
    return update(current, now, fields);
  }
  return newIncident(t.kernel_id, now, fields);
}

/** A gpu_pressure: joins the kernel's GPU out-of-memory notice when it is recent. */
export function onGpuPressure(
  side: IIncident | null,
  ev: IGpuPressureEvent,
  now: number
): IIncident {
  const fields = { gpu: ev, words: ev.words, gpuStop: null };
  if (
    side &&
    side.phase === 'kept' &&
    recent(side, now) &&
    (side.gpu || side.termination?.verdict === 'gpu_out_of_memory')
  ) {
    return update(side, now, fields);
  }
  return newIncident(ev.kernel_id, now, {
    ...fields,
    phase: 'kept',
    path: ev.path
  });
}

/** A memory_pressure: one incident for the server, updated by each new event. */
export function onPressure(
  current: IIncident | null,
  ev: IPressureEvent,
  now: number
): IIncident {
  const fields: Partial<IIncident> = {
    phase: 'pressure',
    words: ev.words,
    usageBytes: ev.usage_bytes,
    limitBytes: ev.limit_bytes
  };
  return current && current.phase !== 'closed'
    ? update(current, now, fields)
    : newIncident(null, now, fields);
}

/**
 * A poll of the budget (fetched at `fetchedAt`, client ms) after a pressure event: relieved
 * once the usage is back under the warn line.
 */
export function onBudget(
  incident: IIncident,
  budget: IBudget,
  warnLine: number | null,
  fetchedAt: number
): IIncident {
  if (
    incident.phase === 'pressure' &&
    fetchedAt > incident.updatedAt &&
    warnLine !== null &&
    budget.usage_bytes < warnLine
  ) {
    return update(incident, fetchedAt, {
      phase: 'relieved',
      usageBytes: budget.usage_bytes,
      limitBytes: budget.limit_bytes
    });
  }
  return incident;
}

/** A server_died record for a notebook just opened (shown once). */
export function earlierIncident(t: ITermination, now: number): IIncident {
  return newIncident(t.kernel_id, now, {
    phase: 'earlier',
    termination: t,
    words: t.words,
    path: t.path
  });
}

/** Whether the kernel of an ended incident is running again, from the server's kernels. */
export function kernelBack(
  incident: IIncident,
  kernels: ReadonlyArray<IKernel>
): IKernel | null {
  const t = incident.termination;
  if (!t) {
    return null;
  }
  const endedAt = t.ended_at ?? 0;
  const path = t.path ?? incident.path;
  for (const kernel of kernels) {
    if (
      kernel.execution_state !== 'idle' &&
      kernel.execution_state !== 'busy'
    ) {
      continue;
    }
    if (kernel.id === t.kernel_id) {
      // The same id again: restarted in place (an automatic restart after a death).
      if ((kernel.memory?.sampled_at ?? 0) > endedAt + 0.5) {
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
 * Apply a poll of the server's kernels: a warning (or a dry-run halt) whose memory went back
 * under the warn line has recovered; a halt too, once memguard's interrupt grace is over
 * (`graceMs`) and it did not go on to a shutdown; an ended kernel that runs again is back.
 */
export function onKernels(
  incident: IIncident,
  kernels: ReadonlyArray<IKernel>,
  now: number,
  graceMs: number
): IIncident {
  const kernel = kernels.find(k => k.id === incident.kernelId) ?? null;
  const used = kernel?.memory?.used_bytes ?? null;
  const warn = kernel?.warn_bytes ?? incident.warnBytes;
  const below = used !== null && warn !== null && used < warn;
  switch (incident.phase) {
    case 'warning':
      return below
        ? update(incident, now, { phase: 'recovered', currentBytes: used })
        : incident;
    case 'halting': {
      if (!below || incident.haltingAt === null) {
        return incident;
      }
      const escalated =
        incident.step === 'shutdown' || incident.step === 'kill';
      const waited =
        incident.dryRun || now - incident.haltingAt > graceMs + 1500;
      return !escalated && waited
        ? update(incident, now, { phase: 'recovered', currentBytes: used })
        : incident;
    }
    case 'ended':
      return kernelBack(incident, kernels)
        ? update(incident, now, { phase: 'back' })
        : incident;
    default:
      return incident;
  }
}
