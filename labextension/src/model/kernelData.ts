/**
 * What the model knows of each kernel beyond the poll's list: the history of its decision
 * figure (collected from the polls, replaced by the server's own when it is fetched), its
 * cells, its largest variables, and the latest detail of the kernels a view watches. The
 * model's poll calls `fetchView` for the watched ones; nothing here polls on its own.
 */
import * as api from '../api';
import { ICellRecord, IKernel, IVariablesPage } from './types';

/** Samples kept per kernel for charts. */
export const HISTORY_LENGTH = 240;

/** What a Details view of a running kernel shows: the server's latest about it. */
export interface IKernelView {
  kernel: IKernel | null;
  /** The history of the kernel's decision figure, from the server. */
  history: [number, number][];
  /** The kernel is gone from the server. */
  gone: boolean;
  loaded: boolean;
}

/** A kernel's largest variables, as last asked. */
export interface IVariablesState {
  page: IVariablesPage | null;
  error: string | null;
  loading: boolean;
}

export class KernelData {
  constructor(
    private readonly signals: {
      /** Something changed (a view should render again). */
      changed: () => void;
      /** A kernel's cells were fetched again. */
      cells: (kernelId: string) => void;
      /** A watched kernel is gone from the server. */
      gone: (kernelId: string) => void;
    }
  ) {}

  /** Recent [time, bytes] per kernel (the decision figure), for charts. */
  readonly history = new Map<string, [number, number][]>();

  /** The kernels a view watches. */
  get watched(): string[] {
    return [...this._watched.keys()];
  }

  /** Watch a kernel (the first fetch at once): call the result to stop. */
  watch(kernelId: string): () => void {
    this._watched.set(kernelId, (this._watched.get(kernelId) ?? 0) + 1);
    void this.fetchView(kernelId).then(() => this.signals.changed());
    let done = false;
    return () => {
      if (done) {
        return;
      }
      done = true;
      const n = (this._watched.get(kernelId) ?? 1) - 1;
      if (n > 0) {
        this._watched.set(kernelId, n);
      } else {
        this._watched.delete(kernelId);
      }
    };
  }

  /** What the server last said about a kernel (`kernel`: the poll's, until then). */
  view(kernelId: string, kernel: IKernel | null): IKernelView {
    return (
      this._views.get(kernelId) ?? {
        kernel,
        history: this.history.get(kernelId) ?? [],
        gone: false,
        loaded: false
      }
    );
  }

  /** The last cell records fetched for a kernel (newest first), or null. */
  cells(kernelId: string): ICellRecord[] | null {
    return this._cells.get(kernelId) ?? null;
  }

  /** Fetch a kernel's cell records (newest first); null when the kernel is gone. */
  async fetchCells(kernelId: string): Promise<ICellRecord[] | null> {
    try {
      const cells = await api.getCells(kernelId);
      this._cells.set(kernelId, cells);
      this.signals.cells(kernelId);
      return cells;
    } catch {
      return null;
    }
  }

  /** A kernel's largest variables as last asked (null: never asked). */
  variables(kernelId: string): IVariablesState | null {
    return this._variables.get(kernelId) ?? null;
  }

  /** Ask a kernel for its largest variables (its agent answers, when it can). */
  async fetchVariables(kernelId: string): Promise<void> {
    const before = this._variables.get(kernelId);
    this._variables.set(kernelId, {
      page: before?.page ?? null,
      error: null,
      loading: true
    });
    this.signals.changed();
    let state: IVariablesState;
    try {
      state = {
        page: await api.getVariables(kernelId),
        error: null,
        loading: false
      };
    } catch (error) {
      state = { page: null, error: api.errorText(error), loading: false };
    }
    this._variables.set(kernelId, state);
    this.signals.changed();
  }

  /** Fetch a kernel's history (and its cells, for a watched one) from the server. */
  async fetchView(kernelId: string, withCells = true): Promise<void> {
    const before = this._views.get(kernelId);
    if (before?.gone) {
      return;
    }
    try {
      const [detail] = await Promise.all([
        api.getKernel(kernelId),
        withCells ? this.fetchCells(kernelId) : null
      ]);
      if (detail.history.length) {
        this.history.set(kernelId, detail.history.slice(-HISTORY_LENGTH));
      }
      this._views.set(kernelId, {
        kernel: detail.kernel,
        history: this.history.get(kernelId) ?? [],
        gone: false,
        loaded: true
      });
    } catch (error) {
      if (error instanceof api.ApiError && error.status === 404) {
        this._views.set(kernelId, {
          kernel: before?.kernel ?? null,
          history: before?.history ?? this.history.get(kernelId) ?? [],
          gone: true,
          loaded: true
        });
        this.signals.gone(kernelId);
      }
    }
  }

  /** A poll of the kernels: their histories grow; what is gone is dropped. */
  apply(kernels: ReadonlyArray<IKernel>): void {
    const live = new Set(kernels.map(k => k.id));
    for (const kernel of kernels) {
      if (kernel.memory) {
        const series = [...(this.history.get(kernel.id) ?? [])];
        const last = series[series.length - 1];
        if (!last || kernel.memory.sampled_at > last[0]) {
          series.push([kernel.memory.sampled_at, kernel.memory.used_bytes]);
        }
        this.history.set(kernel.id, series.slice(-HISTORY_LENGTH));
      }
    }
    for (const map of [this.history, this._cells, this._variables]) {
      for (const id of [...map.keys()]) {
        if (!live.has(id) && !this._watched.has(id)) {
          map.delete(id);
        }
      }
    }
  }

  private _watched = new Map<string, number>();
  private _views = new Map<string, IKernelView>();
  private _cells = new Map<string, ICellRecord[]>();
  private _variables = new Map<string, IVariablesState>();
}
