/**
 * The book of incidents: which incident each kernel has under way (and its last "kept" one),
 * the server's pressure incident, and which records were applied already (each once, whether
 * it came as an event, from the journal or from an earlier page). No JupyterLab imports: the
 * model feeds it, and tells the views through `changed`.
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
  earlierIncident,
  IIncident,
  isActive,
  newIncident,
  onBudget,
  onGpuPressure,
  onHalting,
  onHaltStep,
  onKernels,
  onPressure,
  onTerminated,
  onWarning,
  terminationKey
} from './incidents';
import { IBudget, IKernel, ITermination } from './types';

export class IncidentBook {
  constructor(private readonly changed: (incident: IIncident) => void) {}

  get(key: string): IIncident | null {
    return this._incidents.get(key) ?? null;
  }

  all(): IIncident[] {
    return [...this._incidents.values()];
  }

  /** The incident under way (or the last one) of a kernel; not its "kept" notes. */
  of(kernelId: string | null | undefined): IIncident | null {
    const key = kernelId ? this._current.get(kernelId) : undefined;
    return key ? this.get(key) : null;
  }

  /** The server's pressure incident, if one is shown. */
  get pressure(): IIncident | null {
    return this._pressure ? this.get(this._pressure) : null;
  }

  warning(ev: IWarningEvent, now: number): IIncident {
    return this._set(onWarning(this.of(ev.kernel_id), ev, now));
  }

  halting(ev: IHaltingEvent | ICulledEvent, now: number): IIncident {
    return this._set(onHalting(this.of(ev.kernel_id), ev, now));
  }

  step(ev: IHaltedEvent, now: number): IIncident | null {
    const current = this.of(ev.kernel_id);
    const next = onHaltStep(current, ev, now);
    return next && next !== current ? this._set(next) : null;
  }

  gpu(ev: IGpuPressureEvent, now: number): IIncident {
    return this._set(onGpuPressure(this._sideOf(ev.kernel_id), ev, now));
  }

  memoryPressure(ev: IPressureEvent, now: number): IIncident {
    return this._set(onPressure(this.pressure, ev, now));
  }

  /** Whether a record was applied already. */
  seen(t: ITermination): boolean {
    return this._seen.has(terminationKey(t)) || this._seenMatch(t);
  }

  /** A record, applied once; null when it was seen or there is nothing to tell. */
  termination(t: ITermination, now: number, quiet: boolean): IIncident | null {
    if (this.seen(t)) {
      return null;
    }
    this._seen.add(terminationKey(t));
    const next = onTerminated(
      this.of(t.kernel_id),
      this._sideOf(t.kernel_id),
      t,
      now,
      quiet
    );
    return next ? this._set(next) : null;
  }

  /** A server_died record of a notebook just opened, applied once. */
  earlier(t: ITermination, now: number): IIncident | null {
    if (this.seen(t)) {
      return null;
    }
    this._seen.add(terminationKey(t));
    return this._set(earlierIncident(t, now));
  }

  /** An undismissed stop notice of an earlier page, shown again until its kernel is back. */
  restore(
    t: ITermination,
    now: number,
    kernels: ReadonlyArray<IKernel>
  ): IIncident | null {
    if (this._seen.has(terminationKey(t))) {
      return null;
    }
    this._seen.add(terminationKey(t));
    const incident = newIncident(t.kernel_id, now, {
      phase: 'ended',
      termination: t,
      words: t.words,
      path: t.path,
      restored: true
    });
    return this._set(onKernels(incident, kernels, now, 0));
  }

  /**
   * A poll of the kernels: moves incidents on; returns the kernels that vanished while an
   * incident was under way (the journal may say why).
   */
  kernels(
    kernels: ReadonlyArray<IKernel>,
    now: number,
    graceMs: number
  ): string[] {
    const vanished: string[] = [];
    for (const incident of this.all()) {
      const next = onKernels(incident, kernels, now, graceMs);
      if (next !== incident) {
        this._set(next);
      }
      if (
        isActive(next) &&
        next.kernelId &&
        !kernels.some(k => k.id === next.kernelId)
      ) {
        vanished.push(next.kernelId);
      }
    }
    return vanished;
  }

  /** A poll of the budget: the pressure notice says when memory is no longer short. */
  budget(budget: IBudget, warnLine: number | null, fetchedAt: number): void {
    const incident = this.pressure;
    if (incident) {
      const next = onBudget(incident, budget, warnLine, fetchedAt);
      if (next !== incident) {
        this._set(next);
      }
    }
  }

  /**
   * The journal's rows: an incident known from its event takes the row's server time (its
   * `ended_at`, compared with the server's sample times to see the kernel back).
   */
  adopt(rows: ReadonlyArray<ITermination>): void {
    for (const incident of this.all()) {
      const t = incident.termination;
      if (!t || t.id === null) {
        continue;
      }
      const row = rows.find(r => r.id === t.id);
      if (row?.ended_at && row.ended_at !== t.ended_at) {
        this._set({
          ...incident,
          termination: { ...t, ended_at: row.ended_at }
        });
      }
    }
  }

  patch(key: string, fields: Partial<IIncident>, now: number): void {
    const incident = this.get(key);
    if (incident) {
      this._set({ ...incident, ...fields, updatedAt: now });
    }
  }

  /** Forget an incident (its notice was dismissed or closed). */
  forget(key: string): void {
    const incident = this.get(key);
    if (!incident) {
      return;
    }
    this._incidents.delete(key);
    for (const map of [this._current, this._side]) {
      if (incident.kernelId && map.get(incident.kernelId) === key) {
        map.delete(incident.kernelId);
      }
    }
    if (this._pressure === key) {
      this._pressure = null;
    }
  }

  private _sideOf(kernelId: string): IIncident | null {
    const key = this._side.get(kernelId);
    return key ? this.get(key) : null;
  }

  /** An event without a journal id and the journal's row for the same end are one record. */
  private _seenMatch(t: ITermination): boolean {
    for (const incident of this._incidents.values()) {
      const other = incident.termination;
      if (
        other &&
        other.kernel_id === t.kernel_id &&
        other.verdict === t.verdict &&
        Math.abs((other.ended_at ?? 0) - (t.ended_at ?? 0)) < 30 &&
        (other.id === null || t.id === null)
      ) {
        return true;
      }
    }
    return false;
  }

  private _set(incident: IIncident): IIncident {
    this._incidents.set(incident.key, incident);
    if (incident.kernelId === null) {
      this._pressure = incident.key;
    } else if (incident.phase === 'kept' || incident.phase === 'earlier') {
      // A kept note of its own stays beside the incident under way.
      if (this._current.get(incident.kernelId) !== incident.key) {
        this._side.set(incident.kernelId, incident.key);
      }
    } else {
      this._current.set(incident.kernelId, incident.key);
    }
    this.changed(incident);
    return incident;
  }

  private _incidents = new Map<string, IIncident>();
  private _current = new Map<string, string>();
  private _side = new Map<string, string>();
  private _pressure: string | null = null;
  private _seen = new Set<string>();
}
