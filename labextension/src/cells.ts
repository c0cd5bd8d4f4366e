/**
 * The notebook side of a halt: remember which cell is running in each notebook; when memguard
 * halts its kernel, save at once (no edit is lost), wait for the outcome (the interrupt's
 * traceback, the kernel's end), add memguard's note to that cell's output, and save again,
 * so the file on disk matches the screen.
 */
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

import { IIncident } from './incidents';
import { cellNote, cellNotePrefixes, ITrans } from './messages';
import { MemoryModel } from './model';

/** The open notebooks of a kernel (by its id, else by the notebook path). */
export function notebooksOf(
  tracker: INotebookTracker | null,
  kernelId: string,
  path?: string | null
): NotebookPanel[] {
  const found: NotebookPanel[] = [];
  tracker?.forEach(panel => {
    const session = panel.sessionContext.session;
    if (session?.kernel?.id === kernelId) {
      found.push(panel);
    } else if (path && panel.context.path === path) {
      found.push(panel);
    }
  });
  return found;
}

/** Save every open notebook of a kernel; resolves with how many were saved. */
export async function saveNotebooks(panels: NotebookPanel[]): Promise<number> {
  const results = await Promise.allSettled(
    panels.map(panel => panel.context.save())
  );
  return results.filter(r => r.status === 'fulfilled').length;
}

function wait(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export class HaltedCells {
  constructor(
    private readonly model: MemoryModel,
    private readonly tracker: INotebookTracker,
    private readonly trans: ITrans
  ) {
    tracker.widgetAdded.connect((_, panel) => this._watch(panel));
    tracker.forEach(panel => this._watch(panel));
    model.incidentChanged.connect((_, incident) => {
      if (
        incident.phase === 'halting' &&
        !incident.dryRun &&
        !this._handled.has(incident.key)
      ) {
        this._handled.add(incident.key);
        void this._handle(incident);
      }
    });
  }

  /** The cell of a notebook whose execution the kernel is running now. */
  runningCell(panel: NotebookPanel): CodeCell | null {
    const msgId = this._running.get(panel);
    let first: CodeCell | null = null;
    for (const cell of panel.content.widgets) {
      if (cell.model.type !== 'code') {
        continue;
      }
      const code = cell as CodeCell;
      if (msgId && code.outputArea.future?.msg.header.msg_id === msgId) {
        return code;
      }
      if (!first && code.model.executionState === 'running') {
        first = code;
      }
    }
    return first;
  }

  private _watch(panel: NotebookPanel): void {
    if (this._watched.has(panel)) {
      return;
    }
    this._watched.add(panel);
    panel.sessionContext.iopubMessage.connect((_, msg) => {
      if (KernelMessage.isExecuteInputMsg(msg)) {
        const parent = msg.parent_header as { msg_id?: string };
        if (parent.msg_id) {
          this._running.set(panel, parent.msg_id);
        }
      }
    });
  }

  private async _handle(incident: IIncident): Promise<void> {
    const panels = notebooksOf(this.tracker, incident.kernelId);
    if (!panels.length) {
      return;
    }
    const cells = new Map<NotebookPanel, CodeCell | null>(
      panels.map(panel => [panel, this.runningCell(panel)])
    );
    this.model.patchIncident(incident.key, { saved: 'saving' });
    // Save the edits at once, then again once the note is in.
    await saveNotebooks(panels.filter(panel => panel.context.model.dirty));
    const kernelEnded = await this._outcome(incident.key);
    let marked = false;
    for (const [, cell] of cells) {
      if (!cell || cell.isDisposed) {
        continue;
      }
      // Let the interrupt's traceback arrive first: the note goes under it.
      for (let i = 0; i < 20 && cell.model.executionState === 'running'; i++) {
        await wait(100);
      }
      const latest = this.model.incident(incident.key) ?? incident;
      const text = cellNote(latest, kernelEnded, {
        trans: this.trans,
        units: this.model.units
      });
      if (!this._hasNote(cell)) {
        cell.model.outputs.add({
          output_type: 'stream',
          name: 'stderr',
          text: `${text}\n`
        });
        marked = true;
      }
    }
    const saved = await saveNotebooks(panels.filter(p => !p.isDisposed));
    this.model.patchIncident(incident.key, {
      saved: saved === panels.length ? 'saved' : 'failed',
      marked
    });
  }

  /** Whether the halt ended the kernel (true) or the interrupt was enough (false). */
  private _outcome(key: string): Promise<boolean> {
    const settings = this.model.status?.settings;
    const limit =
      ((settings?.interrupt_grace ?? 2) + (settings?.shutdown_grace ?? 3)) *
        1000 +
      10000;
    return new Promise<boolean>(resolve => {
      const decide = (): boolean => {
        const incident = this.model.incident(key);
        switch (incident?.phase) {
          case 'ended':
          case 'back':
          case 'closed':
            resolve(true);
            return true;
          case 'recovered':
            resolve(false);
            return true;
          default:
            return false;
        }
      };
      if (decide()) {
        return;
      }
      const onChange = (_: MemoryModel, changed: IIncident): void => {
        if (changed.key === key && decide()) {
          this.model.incidentChanged.disconnect(onChange);
          clearTimeout(timer);
        }
      };
      const timer = setTimeout(() => {
        this.model.incidentChanged.disconnect(onChange);
        const incident = this.model.incident(key);
        resolve(!incident || !this.model.kernel(incident.kernelId));
      }, limit);
      this.model.incidentChanged.connect(onChange);
    });
  }

  private _hasNote(cell: CodeCell): boolean {
    const outputs = cell.model.outputs;
    for (let i = 0; i < outputs.length; i++) {
      const output = outputs.get(i).toJSON() as { text?: string | string[] };
      const text = Array.isArray(output.text)
        ? output.text.join('')
        : (output.text ?? '');
      if (cellNotePrefixes(this.trans).some(prefix => text.includes(prefix))) {
        return true;
      }
    }
    return false;
  }

  private _running = new WeakMap<NotebookPanel, string>();
  private _watched = new WeakSet<NotebookPanel>();
  private _handled = new Set<string>();
}
