/**
 * The client-side state every view reads: the server's kernels, budget and status, the
 * journal's recent records, the kernels' cells, variables and histories, and the incidents.
 * One Poll (backing off after errors, six times slower while the page is hidden) fetches the
 * kernels, the status when due, and the details of the kernels a view watches; memguard's
 * events (decoded in events.ts) move the incidents on at once. Views never call the API
 * themselves: they ask the model.
 */
import { VDomModel } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import * as api from '../api';
import { resolveUnits } from '../format';
import { IncidentBook } from './book';
import { IIncident } from './incidents';
import { IKernelView, IVariablesState, KernelData } from './kernelData';
export type { IKernelView, IVariablesState } from './kernelData';
import { IStorage, ShownLedger } from './persist';
import { pollInterval } from './poll';
import { Records } from './records';
import {
  IBudget,
  ICellRecord,
  IKernel,
  IStatus,
  ITermination,
  IVerdictInfo,
  Units,
  UnitsSetting
} from './types';

/** How often the status (settings, verdicts, who holds the memory) is fetched, in ms… */
const STATUS_EVERY = 30000;

/** …and while a view shows who holds the memory (the server scans every few seconds). */
const STATUS_WATCHED_EVERY = 4000;

export class MemoryModel extends VDomModel {
  constructor(
    options: {
      refreshSeconds?: number;
      unitsSetting?: UnitsSetting;
      storage?: IStorage | null;
      storageKey?: string;
    } = {}
  ) {
    super();
    this._refreshSeconds = options.refreshSeconds ?? 2;
    this._unitsSetting = options.unitsSetting ?? 'server';
    this._book = new IncidentBook(incident => {
      this._incidentChanged.emit(incident);
      this.stateChanged.emit();
    });
    this._records = new Records({
      book: this._book,
      ledger: new ShownLedger(
        options.storage ?? null,
        `${options.storageKey ?? 'jupyter-memguard'}:shown`
      ),
      verdict: name => this.verdict(name),
      waiting: () => !this.status && !this._polled,
      refresh: () => void this.refresh(),
      refreshTerminations: () => void this.refreshTerminations(),
      refreshStatus: () => void this.refreshStatus(),
      serverDied: path => this._serverDied.emit(path)
    });
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
  kernels = new Map<string, IKernel>();
  budget: IBudget | null = null;
  /** When (client ms) the budget was last fetched. */
  budgetAt = 0;
  status: IStatus | null = null;
  /** The journal's most recent records, newest first (those whose kernel survived too). */
  terminations: ITermination[] = [];
  /** Why the server extension cannot be reached, or null when it can. */
  error: string | null = null;
  /** Recent [time, bytes] per kernel (the decision figure), for charts. */
  get history(): Map<string, [number, number][]> {
    return this._data.history;
  }

  /** An incident was added or changed. */
  get incidentChanged(): ISignal<this, IIncident> {
    return this._incidentChanged;
  }

  /** A kernel's cell records were fetched again (the kernel id). */
  get cellsChanged(): ISignal<this, string> {
    return this._cellsChanged;
  }

  /** A server_died record was announced for a notebook (its path). */
  get serverDied(): ISignal<this, string> {
    return this._serverDied;
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

  set unitsSetting(value: UnitsSetting) {
    if (value !== this._unitsSetting) {
      this._unitsSetting = value;
      this.stateChanged.emit();
    }
  }

  /** The units in force: the user's setting, else the server's `display_units`. */
  get units(): Units {
    return resolveUnits(this._unitsSetting, this.status?.display_units ?? null);
  }

  /** The server's row for a verdict, if it has one. */
  verdict(name: string): IVerdictInfo | null {
    return this.status?.verdicts[name] ?? null;
  }

  /** Keep the status fresh while a view shows it: call the result when it no longer does. */
  watchStatus(): () => void {
    this._statusWatchers += 1;
    if (Date.now() - this._statusAt > STATUS_WATCHED_EVERY) {
      void this.refreshStatus();
    }
    let done = false;
    return () => {
      this._statusWatchers -= done ? 0 : 1;
      done = true;
    };
  }

  /**
   * Fetch a kernel's history and cells with every poll while a view shows it (the first
   * fetch at once): call the result when it no longer does.
   */
  watchKernel(kernelId: string): () => void {
    return this._data.watch(kernelId);
  }

  /** What the server last said about a watched kernel. */
  kernelView(kernelId: string): IKernelView {
    return this._data.view(kernelId, this.kernel(kernelId));
  }

  kernel(kernelId: string | null | undefined): IKernel | null {
    return kernelId ? (this.kernels.get(kernelId) ?? null) : null;
  }

  /** The last cell records fetched for a kernel (newest first), or null. */
  cells(kernelId: string): ICellRecord[] | null {
    return this._data.cells(kernelId);
  }

  /** Fetch a kernel's cell records (newest first); null when the kernel is gone. */
  fetchCells(kernelId: string): Promise<ICellRecord[] | null> {
    return this._data.fetchCells(kernelId);
  }

  /** A kernel's largest variables as last asked (null: never asked). */
  variables(kernelId: string): IVariablesState | null {
    return this._data.variables(kernelId);
  }

  /** Ask a kernel for its largest variables (its agent answers, when it can). */
  fetchVariables(kernelId: string): Promise<void> {
    return this._data.fetchVariables(kernelId);
  }

  /** The incident under way (or the last one) of a kernel. */
  incidentOf(kernelId: string | null | undefined): IIncident | null {
    return this._book.of(kernelId);
  }

  incident(key: string): IIncident | null {
    return this._book.get(key);
  }

  get incidents(): IIncident[] {
    return this._book.all();
  }

  /** The record that ended a kernel (not one it survived), if memguard knows one. */
  ended(kernelId: string | null | undefined): ITermination | null {
    const incident = this.incidentOf(kernelId);
    if (incident?.termination && incident.phase === 'ended') {
      return incident.termination;
    }
    return (
      this.terminations.find(t => t.kernel_id === kernelId && !t.survived) ??
      null
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
      this._setStatus(await api.getStatus());
      this.stateChanged.emit();
    } catch {
      // the next poll says why
    }
  }

  async refreshTerminations(limit = 50): Promise<void> {
    try {
      this.terminations = (await api.getTerminations({ limit })).terminations;
      this._book.adopt(this.terminations);
    } catch (error) {
      this.error = api.errorText(error);
    }
    this.stateChanged.emit();
  }

  /** Handle one emission of the server's event bus (others than memguard's are ignored). */
  handleEvent(emission: unknown): void {
    this._records.event(emission);
  }

  /** A record from an event or the journal (each one is applied once). */
  addTermination(t: ITermination): IIncident | null {
    return this._records.add(t);
  }

  /** Ask the journal whether (and why) a kernel ended in the last `seconds`. */
  askJournal(kernelId: string, seconds = 120): Promise<ITermination | null> {
    return this._records.ask(kernelId, seconds);
  }

  /**
   * A notebook was opened: if the server stopped abruptly under its last kernel, show that
   * record (once per record, across reloads).
   */
  checkServerDied(path: string): Promise<IIncident | null> {
    return this._records.serverDied(path);
  }

  /** Show again a stop notice an earlier page left undismissed. */
  restore(t: ITermination): IIncident | null {
    return this._book.restore(t, Date.now(), [...this.kernels.values()]);
  }

  /** Change fields of an incident (save state, note added, first shown…). */
  patchIncident(key: string, fields: Partial<IIncident>): void {
    this._book.patch(key, fields, Date.now());
  }

  /** Forget an incident (its notice was dismissed). */
  forget(key: string): void {
    this._book.forget(key);
  }

  /** Stop a kernel now (the Memory panel, idle GPU holders); then poll. */
  async halt(kernelId: string, reason: string): Promise<void> {
    try {
      await api.haltKernel(kernelId, reason);
    } finally {
      void this.refresh();
      void this.refreshStatus();
    }
  }

  /** Interrupt a kernel's running cell (it keeps its variables). */
  interrupt(kernelId: string): Promise<void> {
    return api.interruptKernel(kernelId);
  }

  private _frequency(): { interval: number; backoff: boolean; max: number } {
    return {
      interval: pollInterval(this._refreshSeconds, document.hidden),
      backoff: true,
      max: 60000
    };
  }

  private _setStatus(status: IStatus): void {
    this.status = status;
    this._statusAt = Date.now();
    this._records.flush();
  }

  private async _fetch(): Promise<void> {
    const every =
      this._statusWatchers > 0 ? STATUS_WATCHED_EVERY : STATUS_EVERY;
    const statusDue = !this.status || Date.now() - this._statusAt > every;
    try {
      // The watched kernels' views (each catches its own errors) in the same tick.
      const views = Promise.all(
        this._data.watched.map(id => this._data.fetchView(id))
      );
      const [page, status] = await Promise.all([
        api.getKernels(),
        statusDue ? api.getStatus() : Promise.resolve(null)
      ]);
      await views;
      if (status) {
        this._setStatus(status);
      }
      this._applyKernels(page.kernels, page.budget);
      this.error = null;
    } catch (error) {
      this.error = api.errorText(error) || 'memguard is not reachable';
      throw error;
    } finally {
      if (!this._polled) {
        this._polled = true;
        // Without the status, records cannot wait for its verdict table any longer.
        this._records.flush();
      }
      this._resolveReady();
      this.stateChanged.emit();
    }
  }

  private _applyKernels(kernels: IKernel[], budget: IBudget): void {
    const now = Date.now();
    this.budget = budget;
    this.budgetAt = now;
    this.kernels = new Map(kernels.map(k => [k.id, k]));
    this._data.apply(kernels);
    const settings = this.status?.settings;
    const grace = (settings?.interrupt_grace ?? 2) * 1000;
    for (const kernelId of this._book.kernels(kernels, now, grace)) {
      // A kernel that vanished during a warning or a halt: ask the journal why.
      if (!this._asked.has(kernelId)) {
        this._asked.add(kernelId);
        setTimeout(() => void this.askJournal(kernelId), 2000);
      }
    }
    // The budget's warn line is the server's; an older server gives only the fraction.
    const warnLine =
      budget.warn_bytes ??
      (settings?.warn_fraction
        ? budget.limit_bytes * settings.warn_fraction
        : null);
    this._book.budget(budget, warnLine, now);
  }

  private _poll: Poll;
  private _book: IncidentBook;
  private _records: Records;
  private _onVisibility: () => void;
  private _refreshSeconds: number;
  private _unitsSetting: UnitsSetting;
  private _started = false;
  private _polled = false;
  private _statusAt = 0;
  private _statusWatchers = 0;
  private _asked = new Set<string>();
  private _data = new KernelData({
    changed: () => this.stateChanged.emit(),
    cells: kernelId => this._cellsChanged.emit(kernelId),
    gone: kernelId => void this.askJournal(kernelId, 600)
  });
  private _incidentChanged = new Signal<this, IIncident>(this);
  private _cellsChanged = new Signal<this, string>(this);
  private _serverDied = new Signal<this, string>(this);
  private _resolveReady: () => void = () => undefined;
  private _ready = new Promise<void>(resolve => {
    this._resolveReady = resolve;
  });
}
