/**
 * Where records and events enter the incidents: memguard's events (decoded, then applied to
 * the book), the journal's rows (each record once), and the server_died records, which are
 * shown once per record when their notebook is opened. A record waits for the server's
 * verdict table (is it quiet?) until the first poll is done.
 */
import * as api from '../api';
import { IncidentBook } from './book';
import { decodeEvent } from './events';
import { IIncident } from './incidents';
import { ShownLedger } from './persist';
import { ITermination, IVerdictInfo } from './types';

/** What the records need of the model. */
export interface IRecordsHost {
  book: IncidentBook;
  ledger: ShownLedger;
  /** The server's row for a verdict; null when it has none (or the status is not known). */
  verdict(name: string): IVerdictInfo | null;
  /** Whether the verdict table can be waited for still (no status, first poll not done). */
  waiting(): boolean;
  refresh(): void;
  refreshTerminations(): void;
  refreshStatus(): void;
  /** A server_died record was announced for a notebook. */
  serverDied(path: string): void;
}

export class Records {
  constructor(private readonly host: IRecordsHost) {}

  /** The records that waited for the verdict table go in. */
  flush(): void {
    this._pending.splice(0).forEach(t => this.add(t));
  }

  /** Handle one emission of the server's event bus (others than memguard's are ignored). */
  event(emission: unknown): void {
    const decoded = decodeEvent(emission);
    if (!decoded) {
      return;
    }
    if (!decoded.ok) {
      console.warn(
        `memguard: a ${decoded.kind} event the page cannot read:`,
        decoded.error.message
      );
      return;
    }
    const now = Date.now();
    const { event } = decoded;
    switch (event.kind) {
      case 'memory_warning':
        this.host.book.warning(event.data, now);
        this.host.refresh();
        break;
      case 'kernel_halting':
      case 'kernel_culled':
        this.host.book.halting(event.data, now);
        this.host.refresh();
        break;
      case 'kernel_halted':
        this.host.book.step(event.data, now);
        break;
      case 'kernel_terminated':
        this.add(event.data);
        this.host.refresh();
        this.host.refreshTerminations();
        break;
      case 'memory_pressure':
        this.host.book.memoryPressure(event.data, now);
        this.host.refreshStatus();
        break;
      case 'gpu_pressure':
        this.host.book.gpu(event.data, now);
        this.host.refreshStatus();
        break;
    }
  }

  /** A record from an event or the journal (each one is applied once). */
  add(t: ITermination): IIncident | null {
    if (t.verdict === 'server_died') {
      // Shown once, when its notebook is (next) opened: the lifecycle asks.
      if (t.path) {
        this.host.serverDied(t.path);
      }
      return null;
    }
    if (this.host.waiting()) {
      // Whether its verdict is quiet is in the server's table: wait for the status.
      this._pending.push(t);
      return null;
    }
    return this.host.book.termination(
      t,
      Date.now(),
      this.host.verdict(t.verdict)?.quiet ?? false
    );
  }

  /** Ask the journal whether (and why) a kernel ended in the last `seconds`. */
  async ask(kernelId: string, seconds = 120): Promise<ITermination | null> {
    try {
      const page = await api.getTerminations({
        kernel_id: kernelId,
        since: Date.now() / 1000 - seconds,
        limit: 1
      });
      const row = page.terminations[0] ?? null;
      if (row) {
        this.add(row);
      }
      return row;
    } catch {
      return null;
    }
  }

  /**
   * A notebook was opened: if the server stopped abruptly under its last kernel, show that
   * record (once per record, across reloads).
   */
  async serverDied(path: string): Promise<IIncident | null> {
    let page;
    try {
      page = await api.getTerminations({
        path,
        verdict: 'server_died',
        limit: 1
      });
    } catch {
      return null;
    }
    const t = page.terminations[0];
    if (!t || t.id === null || !this.host.ledger.add(t.id)) {
      return null;
    }
    return this.host.book.earlier(t, Date.now());
  }

  private _pending: ITermination[] = [];
}
