/**
 * The client-side state shared by every view: the server's kernels, budget and status
 * (polled with a Lumino Poll that backs off on errors and slows down while the page is
 * hidden), the journal's recent terminations, and one incident per kernel event (from
 * memguard's events on the server's event bus, with the journal as a fallback).
 */
import { Event } from '@jupyterlab/services';
import { VDomModel } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  getCells,
  getKernel,
  getKernels,
  getStatus,
  getTerminations
} from './api';
import { pollInterval, resolveUnits, usedBytes } from './format';
import {
  IIncident,
  IMemoryEventData,
  isActive,
  newIncident,
  onHalting,
  onHaltStep,
  onKernels,
  onTerminated,
  onWarning,
  terminationKey
} from './incidents';
import {
  eventKind,
  IBudget,
  ICellRecord,
  IGpuPressure,
  IKernelInfo,
  IOtherProcess,
  IPressure,
  IStatus,
  ITermination,
  Units,
  UnitsSetting
} from './types';

/** Samples kept per kernel for charts. */
const HISTORY_LENGTH = 240;

/** How often the status (settings in force, can_halt) is fetched again, in ms. */
const STATUS_EVERY = 30000;

/** …and while a view shows who holds the memory (the server scans every few seconds). */
const STATUS_WATCHED_EVERY = 4000;

export class MemoryModel extends VDomModel {
  constructor(
    options: { refreshSeconds?: number; unitsSetting?: UnitsSetting } = {}
  ) {
    super();
    this._refreshSeconds = options.refreshSeconds ?? 2;
    this._unitsSetting = options.unitsSetting ?? 'server';
    this._poll = new Poll({
      auto: false,
      factory: () => this._fetch(),
      frequency: this._frequency(),
      name: 'jupyter-memguard:kernels',
      standby: 'never'
    });
    this._onVisibility = () => {
      this._poll.frequency = this._frequency();
      if (!document.hidden) {
        void this._poll.refresh();
      }
    };
    document.addEventListener('visibilitychange', this._onVisibility);
  }

  /** The server's kernels, by id (from the last poll). */
  kernels = new Map<string, IKernelInfo>();
  budget: IBudget | null = null;
  /** When (client ms) the budget was last fetched. */
  budgetAt = 0;
  status: IStatus | null = null;
  /** The journal's most recent terminations, newest first. */
  terminations: ITermination[] = [];
  /** Why the server extension cannot be reached, or null when it can. */
  error: string | null = null;
  /** Recent [time, bytes] per kernel (pages counted once where measured), for charts. */
  history = new Map<string, [number, number][]>();

  /** An incident was added or changed (its phase, figures, save state). */
  get incidentChanged(): ISignal<this, IIncident> {
    return this._incidentChanged;
  }

  /** The server's memory is short because of processes outside the kernels. */
  get pressure(): ISignal<this, IPressure> {
    return this._pressure;
  }

  /** A cell ran out of GPU memory while other kernels hold that GPU. */
  get gpuPressure(): ISignal<this, IGpuPressure> {
    return this._gpuPressure;
  }

  /** A kernel's cell records were fetched again (the kernel id). */
  get cellsChanged(): ISignal<this, string> {
    return this._cellsChanged;
  }

  /** Resolves after the first poll (successful or not). */
  get ready(): Promise<void> {
    return this._ready;
  }

  get refreshSeconds(): number {
    return this._refreshSeconds;
  }

  set refreshSeconds(value: number) {
    this._refreshSeconds = value;
    this._poll.frequency = this._frequency();
  }

  get unitsSetting(): UnitsSetting {
    return this._unitsSetting;
  }

  set unitsSetting(value: UnitsSetting) {
    if (value !== this._unitsSetting) {
      this._unitsSetting = value;
      this.stateChanged.emit();
    }
  }

  /** The units in force: the user's setting, else the server's `display_units`. */
  get units(): Units {
    return resolveUnits(
      this._unitsSetting,
      this.status?.settings?.display_units ?? null
    );
  }

  /** The warn and halt fractions in force. */
  get fractions(): { warn: number; halt: number } {
    return {
      warn: this.status?.settings?.warn_fraction ?? 0.8,
      halt: this.status?.settings?.halt_fraction ?? 0.9
    };
  }

  /**
   * Keep the status (who holds the memory, the GPUs) fresh while a view shows it: call the
   * returned function when it no longer does.
   */
  watchStatus(): () => void {
    this._statusWatchers += 1;
    if (Date.now() - this._statusAt > STATUS_WATCHED_EVERY) {
      void this.refreshStatus();
    }
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this._statusWatchers -= 1;
      }
    };
  }

  /** The last cell records fetched for a kernel (newest first), or null. */
  cells(kernelId: string): ICellRecord[] | null {
    return this._cells.get(kernelId) ?? null;
  }

  /** Fetch a kernel's cell records (newest first); null when the kernel is gone. */
  async fetchCells(kernelId: string): Promise<ICellRecord[] | null> {
    try {
      const { cells } = await getCells(kernelId);
      this._cells.set(kernelId, cells);
      this._cellsChanged.emit(kernelId);
      return cells;
    } catch {
      return null;
    }
  }

  kernel(kernelId: string | null | undefined): IKernelInfo | null {
    return kernelId ? (this.kernels.get(kernelId) ?? null) : null;
  }

  /** The incident under way (or the last one) of a kernel. */
  incidentOf(kernelId: string | null | undefined): IIncident | null {
    if (!kernelId) {
      return null;
    }
    const key = this._current.get(kernelId);
    return key ? (this._incidents.get(key) ?? null) : null;
  }

  incident(key: string): IIncident | null {
    return this._incidents.get(key) ?? null;
  }

  get incidents(): IIncident[] {
    return [...this._incidents.values()];
  }

  /** The termination that ended a kernel, if memguard knows one. */
  ended(kernelId: string | null | undefined): ITermination | null {
    if (!kernelId) {
      return null;
    }
    const incident = this.incidentOf(kernelId);
    if (incident?.termination && incident.phase === 'ended') {
      return incident.termination;
    }
    return (
      this.terminations.find(
        t =>
          t.kernel_id === kernelId &&
          t.verdict !== 'child_oom_killed' &&
          t.verdict !== 'gpu_out_of_memory'
      ) ?? null
    );
  }

  start(): void {
    if (!this._started && !this.isDisposed) {
      this._started = true;
      void this._poll.start();
      void this.refreshTerminations();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    document.removeEventListener('visibilitychange', this._onVisibility);
    this._poll.dispose();
    super.dispose();
  }

  /** Poll now; resolves once that poll has run. */
  async refresh(): Promise<void> {
    if (!this._started || this.isDisposed) {
      return;
    }
    await this._poll.refresh();
    await this._poll.tick.catch(() => undefined);
  }

  async refreshStatus(): Promise<void> {
    try {
      this.status = await getStatus();
      this._statusAt = Date.now();
      this.stateChanged.emit();
    } catch {
      // the next poll says why
    }
  }

  async refreshTerminations(limit = 50): Promise<void> {
    try {
      this.terminations = (await getTerminations({ limit })).terminations;
      this._adoptServerTimes();
      this.stateChanged.emit();
    } catch (error) {
      this.error = (error as Error).message;
      this.stateChanged.emit();
    }
  }

  /** The server's history of a kernel's memory (replaces the one collected here). */
  async fetchHistory(kernelId: string): Promise<[number, number][]> {
    try {
      const info = await getKernel(kernelId);
      // The server's samples are RSS sums: kept where they are the kernel's figure (a
      // kernel measured as PSS keeps the figures collected here).
      if (
        info.history &&
        info.history.length &&
        info.memory?.method !== 'pss'
      ) {
        this.history.set(kernelId, info.history.slice(-HISTORY_LENGTH));
        this.stateChanged.emit();
      }
    } catch {
      // a kernel that is gone has no history
    }
    return this.history.get(kernelId) ?? [];
  }

  /** Handle one event from the server's event bus. */
  handleEvent(event: Event.Emission): void {
    const kind = eventKind(String(event.schema_id ?? ''));
    if (!kind) {
      return;
    }
    const data = event as unknown as IMemoryEventData & Record<string, any>;
    const now = Date.now();
    const current = this.incidentOf(data.kernel_id);
    switch (kind) {
      case 'memory_warning':
        this._set(onWarning(current, data, now, this.fractions));
        void this.refresh();
        break;
      case 'kernel_halting':
        this._set(onHalting(current, data, now, this.fractions));
        void this.refresh();
        break;
      case 'memory_pressure':
        this._pressure.emit({
          usage_bytes: Number(data.usage_bytes ?? 0),
          limit_bytes: Number(data.limit_bytes ?? 0),
          message: String(data.message ?? ''),
          culprit: (data.culprit as IOtherProcess | null) ?? null
        });
        // The Memory panel shows who holds the memory: fetch it now.
        void this.refreshStatus();
        break;
      case 'gpu_pressure':
        this._gpuPressure.emit({
          kernel_id: String(data.kernel_id ?? ''),
          path: data.path ?? null,
          message: String(data.message ?? ''),
          device: Number(data.device ?? 0),
          device_name: String(data.device_name ?? ''),
          requested_bytes:
            typeof data.requested_bytes === 'number'
              ? data.requested_bytes
              : null,
          free_bytes: Number(data.free_bytes ?? 0),
          holders: Array.isArray(data.holders) ? data.holders : []
        });
        void this.refreshStatus();
        break;
      case 'kernel_halted': {
        const next = onHaltStep(current, data, now);
        if (next && next !== current) {
          this._set(next);
        }
        break;
      }
      case 'kernel_terminated':
        this.addTermination({
          id: data.termination_id ?? null,
          kernel_id: data.kernel_id,
          kernel_name: data.kernel_name ?? null,
          path: data.path ?? null,
          ended_at: data.ended_at ?? now / 1000,
          verdict: data.verdict,
          confidence: data.confidence,
          explanation: data.explanation,
          evidence: data.evidence ?? {},
          headline: data.headline ?? null,
          summary: data.summary ?? null,
          advice: data.advice ?? null
        });
        void this.refresh();
        void this.refreshTerminations();
        break;
    }
  }

  /** A termination from an event or the journal (each one is applied once). */
  addTermination(t: ITermination): IIncident | null {
    const key = terminationKey(t);
    if (this._seen.has(key) || this._seenMatch(t)) {
      return null;
    }
    this._seen.add(key);
    const current = this.incidentOf(t.kernel_id);
    const next = onTerminated(current, t, Date.now());
    if (next) {
      this._set(next);
    }
    return next;
  }

  /** Ask the journal whether (and why) a kernel ended in the last `seconds`. */
  async askJournal(
    kernelId: string,
    seconds = 120
  ): Promise<ITermination | null> {
    try {
      const page = await getTerminations({
        kernel_id: kernelId,
        since: Date.now() / 1000 - seconds,
        limit: 1
      });
      const row = page.terminations[0];
      if (row) {
        this.addTermination(row);
        return row;
      }
    } catch {
      // memguard is not reachable
    }
    return null;
  }

  /** Show again an incident persisted by an earlier page (a termination not dismissed). */
  restore(t: ITermination, fields: Partial<IIncident> = {}): IIncident | null {
    const key = terminationKey(t);
    if (this._seen.has(key)) {
      return null;
    }
    this._seen.add(key);
    const now = Date.now();
    const incident = onKernels(
      newIncident(t.kernel_id, now, {
        ...fields,
        phase: 'ended',
        termination: t,
        path: t.path,
        restored: true
      }),
      [...this.kernels.values()],
      now,
      0
    );
    this._set(incident);
    return incident;
  }

  /** Change fields of an incident (save state, note added, first shown…). */
  patchIncident(key: string, fields: Partial<IIncident>): void {
    const incident = this._incidents.get(key);
    if (incident) {
      this._set({ ...incident, ...fields, updatedAt: Date.now() });
    }
  }

  /** Forget an incident (its notice was dismissed). */
  forget(key: string): void {
    const incident = this._incidents.get(key);
    if (!incident) {
      return;
    }
    this._incidents.delete(key);
    if (this._current.get(incident.kernelId) === key) {
      this._current.delete(incident.kernelId);
    }
  }

  /**
   * The kernel_terminated event carries no server time: an incident keeps the browser's clock
   * until its journal row (same id) gives the server's `ended_at`, which the "kernel back"
   * check compares with the server's sample times.
   */
  private _adoptServerTimes(): void {
    for (const incident of [...this._incidents.values()]) {
      const t = incident.termination;
      if (!t || t.id === null || t.id === undefined) {
        continue;
      }
      const row = this.terminations.find(r => r.id === t.id);
      if (row?.ended_at && row.ended_at !== t.ended_at) {
        this._set({
          ...incident,
          termination: { ...t, ended_at: row.ended_at }
        });
      }
    }
  }

  private _seenMatch(t: ITermination): boolean {
    // An event without a journal id and the journal's row for the same end are one termination.
    for (const incident of this._incidents.values()) {
      const other = incident.termination;
      if (
        other &&
        other.kernel_id === t.kernel_id &&
        other.verdict === t.verdict &&
        Math.abs((other.ended_at ?? 0) - (t.ended_at ?? 0)) < 30 &&
        (other.id === null ||
          other.id === undefined ||
          t.id === null ||
          t.id === undefined)
      ) {
        return true;
      }
    }
    return false;
  }

  private _set(incident: IIncident): void {
    this._incidents.set(incident.key, incident);
    if (incident.phase !== 'note') {
      this._current.set(incident.kernelId, incident.key);
    }
    this._incidentChanged.emit(incident);
    this.stateChanged.emit();
  }

  private _frequency(): { interval: number; backoff: boolean; max: number } {
    return {
      interval: pollInterval(this._refreshSeconds, document.hidden),
      backoff: true,
      max: 60000
    };
  }

  private async _fetch(): Promise<void> {
    const every =
      this._statusWatchers > 0 ? STATUS_WATCHED_EVERY : STATUS_EVERY;
    const statusDue = !this.status || Date.now() - this._statusAt > every;
    try {
      const [data, status] = await Promise.all([
        getKernels(),
        statusDue ? getStatus() : Promise.resolve(null)
      ]);
      if (status) {
        this.status = status;
        this._statusAt = Date.now();
      }
      this.budget = data.budget;
      this.budgetAt = Date.now();
      this.kernels = new Map(data.kernels.map(k => [k.id, k]));
      for (const kernel of data.kernels) {
        if (kernel.memory) {
          const series = this.history.get(kernel.id) ?? [];
          const last = series[series.length - 1];
          if (!last || kernel.memory.sampled_at > last[0]) {
            series.push([kernel.memory.sampled_at, usedBytes(kernel.memory)]);
          }
          this.history.set(kernel.id, series.slice(-HISTORY_LENGTH));
        }
      }
      for (const id of [...this.history.keys()]) {
        if (!this.kernels.has(id)) {
          this.history.delete(id);
        }
      }
      for (const id of [...this._cells.keys()]) {
        if (!this.kernels.has(id)) {
          this._cells.delete(id);
        }
      }
      this.error = null;
      this._applyKernels(data.kernels);
    } catch (error) {
      this.error = (error as Error).message || 'memguard is not reachable';
      throw error;
    } finally {
      this._resolveReady();
      this.stateChanged.emit();
    }
  }

  private _applyKernels(kernels: IKernelInfo[]): void {
    const now = Date.now();
    const graceMs = (this.status?.settings?.interrupt_grace ?? 2) * 1000;
    for (const incident of [...this._incidents.values()]) {
      const next = onKernels(incident, kernels, now, graceMs);
      if (next !== incident) {
        this._set(next);
      }
      // A kernel that vanished during a warning or a halt: ask the journal why.
      if (
        isActive(incident) &&
        !kernels.some(k => k.id === incident.kernelId) &&
        !this._asked.has(incident.key)
      ) {
        this._asked.add(incident.key);
        setTimeout(() => {
          const still = this.incident(incident.key);
          if (still && isActive(still)) {
            void this.askJournal(incident.kernelId);
          }
        }, 2000);
      }
    }
  }

  private _poll: Poll;
  private _onVisibility: () => void;
  private _refreshSeconds: number;
  private _unitsSetting: UnitsSetting;
  private _started = false;
  private _statusAt = 0;
  private _incidents = new Map<string, IIncident>();
  private _current = new Map<string, string>();
  private _seen = new Set<string>();
  private _asked = new Set<string>();
  private _incidentChanged = new Signal<this, IIncident>(this);
  private _pressure = new Signal<this, IPressure>(this);
  private _gpuPressure = new Signal<this, IGpuPressure>(this);
  private _cellsChanged = new Signal<this, string>(this);
  private _cells = new Map<string, ICellRecord[]>();
  private _statusWatchers = 0;
  private _resolveReady: () => void = () => undefined;
  private _ready = new Promise<void>(resolve => {
    this._resolveReady = resolve;
  });
}
