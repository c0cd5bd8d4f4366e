/**
 * The client-side state: polls the kernels and status, backs off when hidden or failing.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { getKernels, getStatus, getTerminations } from './api';
import { nextDelay } from './format';
import { IBudget, IKernelInfo, IStatus, ITermination, Units } from './types';

export class MemoryModel {
  constructor(options: { refreshSeconds: number; units: Units }) {
    this.refreshSeconds = options.refreshSeconds;
    this.units = options.units;
  }

  refreshSeconds: number;
  units: Units;
  kernels = new Map<string, IKernelInfo>();
  budget: IBudget | null = null;
  status: IStatus | null = null;
  terminations: ITermination[] = [];
  /** Why the server extension cannot be reached, or null when it can. */
  error: string | null = null;
  /** Recent [time, rss] per kernel, kept on the client for sparklines. */
  history = new Map<string, [number, number][]>();

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  kernel(kernelId: string | null | undefined): IKernelInfo | null {
    return kernelId ? (this.kernels.get(kernelId) ?? null) : null;
  }

  start(): void {
    if (!this._timer && !this._disposed) {
      void this.refresh();
    }
  }

  dispose(): void {
    this._disposed = true;
    if (this._timer) {
      clearTimeout(this._timer);
    }
  }

  /** Fetch now (and schedule the next poll). */
  async refresh(): Promise<void> {
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    try {
      const [data, status] = await Promise.all([
        getKernels(),
        this._statusDue() ? getStatus() : null
      ]);
      if (status) {
        this.status = status;
        this._statusAt = Date.now();
      }
      this.budget = data.budget;
      this.kernels = new Map(data.kernels.map(k => [k.id, k]));
      for (const kernel of data.kernels) {
        if (kernel.memory) {
          const series = this.history.get(kernel.id) ?? [];
          series.push([kernel.memory.sampled_at, kernel.memory.rss_bytes]);
          this.history.set(kernel.id, series.slice(-120));
        }
      }
      for (const id of [...this.history.keys()]) {
        if (!this.kernels.has(id)) {
          this.history.delete(id);
        }
      }
      this.error = null;
      this._failures = 0;
    } catch (error) {
      this.error = (error as Error).message || 'memguard is not reachable';
      this._failures += 1;
    }
    this._changed.emit();
    this._schedule();
  }

  async refreshTerminations(limit = 50): Promise<void> {
    try {
      this.terminations = (await getTerminations({ limit })).terminations;
      this._changed.emit();
    } catch (error) {
      this.error = (error as Error).message;
    }
  }

  private _statusDue(): boolean {
    return !this.status || Date.now() - this._statusAt > 30000;
  }

  private _schedule(): void {
    if (this._disposed) {
      return;
    }
    const delay = nextDelay(
      this.refreshSeconds,
      document.hidden,
      this._failures
    );
    this._timer = setTimeout(() => void this.refresh(), delay);
  }

  private _changed = new Signal<this, void>(this);
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _failures = 0;
  private _statusAt = 0;
  private _disposed = false;
}
