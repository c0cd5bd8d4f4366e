/**
 * The open notebooks as memguard's views need them: which notebooks a kernel has, saving
 * them, and which cell ran which execution (the msg_id of its execute_request, kept from
 * JupyterLab's own execution signals and the kernel's execute_input messages), so that
 * records match their cells — for the badges, and to find the cell that was running when
 * a kernel stopped.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

import { ICellRecord } from '../model/types';
import { ICellRef, matchRecords, runRange } from './cellRecords';
import { IRunRange } from '../texts/notices';

/** The open notebooks of a kernel (by its id, else by the notebook's path). */
export function notebooksOf(
  tracker: INotebookTracker | null,
  kernelId: string | null,
  path?: string | null
): NotebookPanel[] {
  const found: NotebookPanel[] = [];
  tracker?.forEach(panel => {
    const session = panel.sessionContext.session;
    if (kernelId && session?.kernel?.id === kernelId) {
      found.push(panel);
    } else if (path && panel.context.path === path) {
      found.push(panel);
    }
  });
  return found;
}

/** Save every notebook given; resolves with how many were saved. */
export async function saveNotebooks(panels: NotebookPanel[]): Promise<number> {
  const results = await Promise.allSettled(
    panels.map(panel => panel.context.save())
  );
  return results.filter(r => r.status === 'fulfilled').length;
}

/** The msg_id of the execution a code cell runs (or ran last), from JupyterLab's future. */
function futureMsgId(cell: Cell): string | null {
  if (cell.model.type !== 'code') {
    return null;
  }
  return (cell as CodeCell).outputArea?.future?.msg?.header?.msg_id ?? null;
}

/** Which cell of each open notebook ran which execution. */
export class CellIndex {
  constructor(tracker: INotebookTracker) {
    NotebookActions.executed.connect((_, { cell }) => this._remember(cell));
    tracker.widgetAdded.connect((_, panel) => this._watch(panel));
    tracker.forEach(panel => this._watch(panel));
  }

  /** The msg_id of a cell's last execution, if known. */
  msgId(cell: Cell): string | null {
    return futureMsgId(cell) ?? this._msgIds.get(cell.model.id) ?? null;
  }

  /**
   * The cell running now in a notebook: of the cells JupyterLab shows as running, the one
   * whose execute_input came last, else the first; null when none runs.
   */
  running(panel: NotebookPanel): CodeCell | null {
    const msgId = this._running.get(panel);
    let first: CodeCell | null = null;
    for (const cell of panel.content.widgets) {
      if (
        cell.model.type !== 'code' ||
        (cell as CodeCell).model.executionState !== 'running'
      ) {
        continue;
      }
      const code = cell as CodeCell;
      if (msgId && this.msgId(code) === msgId) {
        return code;
      }
      first ??= code;
    }
    return first;
  }

  /** The notebook's code cells as the matching sees them. */
  refs(panel: NotebookPanel): ICellRef[] {
    return panel.content.widgets
      .filter(c => c.model.type === 'code')
      .map(cell => {
        const count = (cell as CodeCell).model.executionCount;
        return {
          id: cell.model.id,
          msgId: this.msgId(cell),
          executionCount: typeof count === 'number' ? count : null,
          source: cell.model.sharedModel.getSource()
        };
      });
  }

  /** The records of a notebook's cells, by cell model id. */
  match(
    panel: NotebookPanel,
    records: ReadonlyArray<ICellRecord>
  ): Map<string, ICellRecord> {
    return matchRecords(this.refs(panel), records);
  }

  /**
   * The index of the cell that was running when the kernel stopped (`running`: the record
   * of the server's evidence; else the cell marked when memguard began to stop `kernelId`),
   * or -1 when it cannot be found (the kernel ran nothing).
   */
  failingIndex(
    panel: NotebookPanel,
    running: ICellRecord | null,
    kernelId: string | null
  ): number {
    const widgets = panel.content.widgets;
    if (running) {
      const matched = this.match(panel, [running]);
      const index = widgets.findIndex(c => matched.has(c.model.id));
      if (index >= 0) {
        return index;
      }
    }
    const mark = this._stopped.get(panel);
    return mark && mark.kernelId === kernelId && !mark.cell.isDisposed
      ? widgets.indexOf(mark.cell)
      : -1;
  }

  /** The cells to run again after a stop: those above the failing one (null: none). */
  runRange(
    panel: NotebookPanel,
    running: ICellRecord | null,
    kernelId: string | null
  ): IRunRange | null {
    const cells = panel.content.widgets.map(c => ({
      type: c.model.type,
      executionCount:
        c.model.type === 'code' &&
        typeof (c as CodeCell).model.executionCount === 'number'
          ? (c as CodeCell).model.executionCount
          : null
    }));
    return runRange(cells, this.failingIndex(panel, running, kernelId));
  }

  /** Remember the cell running now in a notebook as the one a stop of `kernelId` interrupted. */
  markStopped(panel: NotebookPanel, kernelId: string | null): CodeCell | null {
    const cell = this.running(panel);
    if (cell) {
      this._stopped.set(panel, { cell, kernelId });
    } else {
      this._stopped.delete(panel);
    }
    return cell;
  }

  /** The kernel survived the stop: no cell of that notebook is one a later stop failed on. */
  unmarkStopped(panel: NotebookPanel): void {
    this._stopped.delete(panel);
  }

  private _remember(cell: Cell): void {
    const msgId = futureMsgId(cell);
    if (msgId) {
      this._msgIds.set(cell.model.id, msgId);
    }
  }

  private _watch(panel: NotebookPanel): void {
    panel.sessionContext.iopubMessage.connect((_, msg) => {
      if (!KernelMessage.isExecuteInputMsg(msg)) {
        return;
      }
      const parent = msg.parent_header as { msg_id?: string };
      if (!parent.msg_id) {
        return;
      }
      this._running.set(panel, parent.msg_id);
      for (const cell of panel.content.widgets) {
        if (futureMsgId(cell) === parent.msg_id) {
          this._remember(cell);
        }
      }
    });
  }

  private _msgIds = new Map<string, string>();
  private _running = new WeakMap<NotebookPanel, string>();
  private _stopped = new WeakMap<
    NotebookPanel,
    { cell: CodeCell; kernelId: string | null }
  >();
}
