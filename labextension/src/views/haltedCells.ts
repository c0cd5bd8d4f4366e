/**
 * The cell memguard stopped says why: when memguard starts to stop a kernel, its notebooks
 * are saved at once (no edit is lost); once the outcome is known (the record of the end, or
 * of the interrupt the kernel survived), memguard's note — the server's words for it — goes
 * under the interrupt's traceback in the cell that was running, and the notebook is saved
 * again, so the file on disk matches the screen.
 */
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { wrapLines } from '../format';
import { IIncident } from '../model/incidents';
import { MemoryModel } from '../model/model';
import { cellNote, cellNotePrefixes } from '../texts/cells';
import { ITrans } from '../texts/common';
import { CellIndex, notebooksOf, saveNotebooks } from './notebooks';

function wait(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** The note's lines are at most this long: an output area breaks longer ones mid-word. */
const NOTE_WIDTH = 88;

/** How long a "memory back down" waits for the record of the interrupt (ms). */
const RECORD_WAIT_MS = 3000;

export class HaltedCells {
  constructor(
    private readonly model: MemoryModel,
    private readonly tracker: INotebookTracker,
    private readonly index: CellIndex,
    private readonly trans: ITrans
  ) {
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

  private async _handle(incident: IIncident): Promise<void> {
    const panels = notebooksOf(this.tracker, incident.kernelId);
    if (!panels.length) {
      return;
    }
    const cells = new Map<NotebookPanel, CodeCell | null>(
      panels.map(panel => [
        panel,
        this.index.markStopped(panel, incident.kernelId)
      ])
    );
    this.model.patchIncident(incident.key, { saved: 'saving' });
    // Save the edits at once, then again once the note is in.
    await saveNotebooks(panels.filter(panel => panel.context.model.dirty));
    const kernelEnded = await this._outcome(incident.key);
    if (!kernelEnded) {
      panels.forEach(panel => this.index.unmarkStopped(panel));
    }
    let marked = false;
    for (const cell of cells.values()) {
      if (!cell || cell.isDisposed) {
        continue;
      }
      // Let the interrupt's traceback arrive first: the note goes under it.
      for (let i = 0; i < 20 && cell.model.executionState === 'running'; i++) {
        await wait(100);
      }
      if (!this._hasNote(cell)) {
        const latest = this.model.incident(incident.key) ?? incident;
        cell.model.outputs.add({
          output_type: 'stream',
          name: 'stderr',
          text: `${wrapLines(cellNote(latest, kernelEnded, this.trans), NOTE_WIDTH)}\n`
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

  /** Whether the halt ended the kernel (true) or the kernel survived it (false). */
  private _outcome(key: string): Promise<boolean> {
    const settings = this.model.status?.settings;
    const limit =
      ((settings?.interrupt_grace ?? 2) + (settings?.shutdown_grace ?? 3)) *
        1000 +
      10000;
    return new Promise<boolean>(resolve => {
      let recovered: ReturnType<typeof setTimeout> | null = null;
      const finish = (ended: boolean): void => {
        this.model.incidentChanged.disconnect(onChange);
        clearTimeout(timer);
        if (recovered) {
          clearTimeout(recovered);
        }
        resolve(ended);
      };
      const decide = (): void => {
        const incident = this.model.incident(key);
        switch (incident?.phase) {
          case 'ended':
          case 'back':
          case 'closed':
            finish(true);
            break;
          case 'kept':
            finish(false);
            break;
          case 'recovered':
            // The interrupt was enough: its record (and words) should follow.
            recovered ??= setTimeout(() => finish(false), RECORD_WAIT_MS);
            break;
        }
      };
      const onChange = (_: MemoryModel, changed: IIncident): void => {
        if (changed.key === key) {
          decide();
        }
      };
      const timer = setTimeout(() => {
        const incident = this.model.incident(key);
        finish(!incident?.kernelId || !this.model.kernel(incident.kernelId));
      }, limit);
      this.model.incidentChanged.connect(onChange);
      decide();
    });
  }

  private _hasNote(cell: CodeCell): boolean {
    const prefixes = cellNotePrefixes(this.trans);
    const outputs = cell.model.outputs;
    for (let i = 0; i < outputs.length; i++) {
      const output = outputs.get(i).toJSON();
      const raw = output.text;
      const text = Array.isArray(raw)
        ? raw.join('')
        : typeof raw === 'string'
          ? raw
          : '';
      if (prefixes.some(prefix => text.includes(prefix))) {
        return true;
      }
    }
    return false;
  }

  private _handled = new Set<string>();
}
