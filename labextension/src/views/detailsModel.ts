/**
 * The state of one Details view: a running kernel (its figures, history and cells come from
 * the model's one Poll while the view is shown) or a record (its evidence: the history and
 * cells it kept), which cell is selected and which is hovered.
 */
import { VDomModel } from '@jupyterlab/ui-components';

import { MemoryModel } from '../model/model';
import { ICellRecord, IKernel, ITermination } from '../model/types';
import { cellKey } from './timeline';

/** What a Details view shows: a running kernel, or a record. */
export type DetailsTarget =
  | { kind: 'kernel'; kernelId: string }
  | { kind: 'termination'; termination: ITermination };

/** Which cell to show first: its execute_request's msg_id, else its execution count. */
export interface ICellFocus {
  msgId?: string | null;
  executionCount?: number | null;
}

/** The cells of a record's evidence: the running one and the recent ones, once each. */
export function evidenceCells(t: ITermination): ICellRecord[] {
  const all = [...t.evidence.recent_cells];
  const running = t.evidence.running_cell;
  if (running && !all.some(c => cellKey(c) === cellKey(running))) {
    all.unshift(running);
  }
  return all.sort((a, b) => b.started_at - a.started_at);
}

/** The lines a timeline draws: the limit, and the warn and stop lines the server gave. */
export interface ILimits {
  limit: number;
  warn: number | null;
  halt: number | null;
}

export class DetailsModel extends VDomModel {
  constructor(
    readonly memory: MemoryModel,
    readonly target: DetailsTarget
  ) {
    super();
    this.kernelId =
      target.kind === 'kernel' ? target.kernelId : target.termination.kernel_id;
    memory.stateChanged.connect(this._onMemory, this);
    memory.cellsChanged.connect(this._onMemory, this);
  }

  readonly kernelId: string;
  /** The key of the span clicked (or opened from a badge), and of the one hovered. */
  selected: string | null = null;
  hovered: string | null = null;

  /** The kernel as the server last described it (a record's kernel, if it still runs). */
  get kernel(): IKernel | null {
    return this.target.kind === 'kernel'
      ? this.memory.kernelView(this.kernelId).kernel
      : this.memory.kernel(this.kernelId);
  }

  /** [time, bytes] of the kernel's decision figure, oldest first. */
  get history(): ReadonlyArray<[number, number]> {
    return this.target.kind === 'kernel'
      ? this.memory.kernelView(this.kernelId).history
      : this.target.termination.evidence.history;
  }

  /** Newest first. */
  get cells(): ICellRecord[] {
    return this.target.kind === 'kernel'
      ? (this.memory.cells(this.kernelId) ?? [])
      : evidenceCells(this.target.termination);
  }

  /** The kernel is gone (a running kernel's view whose kernel ended). */
  get gone(): boolean {
    return (
      this.target.kind === 'kernel' &&
      this.memory.kernelView(this.kernelId).gone
    );
  }

  /** The first fetch is done (a running kernel's view). */
  get loaded(): boolean {
    return (
      this.target.kind !== 'kernel' ||
      this.memory.kernelView(this.kernelId).loaded
    );
  }

  /** The record shown: the target's, or the one that ended a watched kernel. */
  get termination(): ITermination | null {
    if (this.target.kind === 'termination') {
      return this.target.termination;
    }
    return this.gone ? this.memory.ended(this.kernelId) : null;
  }

  get path(): string | null {
    return (
      this.kernel?.path ??
      (this.target.kind === 'termination' ? this.target.termination.path : null)
    );
  }

  /** The limit and the lines: the kernel's own, else what the record's trigger says. */
  get limits(): ILimits {
    const kernel = this.kernel;
    if (kernel) {
      return {
        limit: kernel.limit_bytes,
        warn: kernel.warn_bytes,
        halt: kernel.halt_bytes
      };
    }
    const t = this.termination;
    const trigger = t?.trigger ?? null;
    const line = trigger?.line_bytes ?? null;
    return {
      limit: t?.evidence.limit_bytes ?? trigger?.limit_bytes ?? 0,
      warn: trigger?.line === 'warn' ? line : null,
      halt: trigger?.line === 'halt' || trigger?.line === 'kill' ? line : null
    };
  }

  /** Follow the kernel with the model's poll while the view is shown. */
  start(): void {
    if (this.target.kind === 'kernel' && !this._unwatch && !this.isDisposed) {
      this._unwatch = this.memory.watchKernel(this.kernelId);
    }
  }

  stop(): void {
    this._unwatch?.();
    this._unwatch = null;
  }

  select(key: string | null): void {
    if (key !== this.selected) {
      this.selected = key;
      this.stateChanged.emit();
    }
  }

  hover(key: string | null): void {
    if (key !== this.hovered) {
      this.hovered = key;
      this.stateChanged.emit();
    }
  }

  /** Select a cell by msg_id or execution count, now or once the cells are known. */
  focus(cell: ICellFocus | null): void {
    this._focus = cell;
    this._applyFocus();
  }

  cell(key: string | null): ICellRecord | null {
    return key ? (this.cells.find(c => cellKey(c) === key) ?? null) : null;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.stop();
    this.memory.stateChanged.disconnect(this._onMemory, this);
    this.memory.cellsChanged.disconnect(this._onMemory, this);
    super.dispose();
  }

  private _applyFocus(): void {
    const focus = this._focus;
    if (!focus) {
      return;
    }
    const cells = this.cells;
    const found =
      (focus.msgId && cells.find(c => c.msg_id === focus.msgId)) ||
      (focus.executionCount !== null && focus.executionCount !== undefined
        ? cells.find(c => c.execution_count === focus.executionCount)
        : undefined);
    if (found) {
      this._focus = null;
      this.select(cellKey(found));
    }
  }

  private _onMemory(): void {
    this._applyFocus();
    this.stateChanged.emit();
  }

  private _focus: ICellFocus | null = null;
  private _unwatch: (() => void) | null = null;
}
