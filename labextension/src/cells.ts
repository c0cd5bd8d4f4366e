/**
 * The notebook side.
 *
 * A halt: remember which cell is running in each notebook; when memguard halts its kernel,
 * save at once (no edit is lost), wait for the outcome (the interrupt's traceback, the
 * kernel's end), add memguard's note to that cell's output, and save again, so the file on
 * disk matches the screen.
 *
 * Badges: after each execution, the kernel's cell records are fetched and each executed cell
 * whose memory changed notably gets a small badge ("+3.6 GiB · peak 4.1 GiB") at the right of
 * its input; a click opens the memory timeline at that cell.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import {
  INotebookTracker,
  Notebook,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';
import { PanelLayout, Widget } from '@lumino/widgets';

import {
  DEFAULT_BADGE_SETTINGS,
  IBadgeSettings,
  ICellRef,
  isNotable,
  matchRecords
} from './badges';
import { IIncident } from './incidents';
import {
  badgeText,
  badgeTitle,
  cellNote,
  cellNotePrefixes,
  ITrans
} from './messages';
import { MemoryModel } from './model';
import { ICellRecord, Units } from './types';

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

/** What a badge's click opens: the timeline of a kernel, at one cell. */
export interface IBadgeTarget {
  kernelId: string;
  msgId: string | null;
  executionCount: number | null;
}

/** The badge of one cell (a button at the right of its input area). */
class CellBadge extends Widget {
  constructor(onClick: (target: IBadgeTarget) => void) {
    super({ node: document.createElement('button') });
    this.addClass('jp-memguard-badge');
    this.node.setAttribute('type', 'button');
    this.node.addEventListener('click', event => {
      event.preventDefault();
      event.stopPropagation();
      if (this.target) {
        onClick(this.target);
      }
    });
    // A click on the badge must not start editing the cell.
    this.node.addEventListener('mousedown', event => event.stopPropagation());
  }

  target: IBadgeTarget | null = null;

  display(text: string, title: string, record: ICellRecord): void {
    if (this.node.textContent !== text) {
      this.node.textContent = text;
    }
    this.node.title = title;
    this.node.setAttribute('aria-label', title);
    this.node.dataset.status = String(record.status);
    this.node.dataset.executionCount = String(record.execution_count ?? '');
    this.toggleClass(
      'jp-memguard-badge-down',
      (record.delta_bytes ?? 0) < 0 && record.status !== 'running'
    );
  }
}

/** How long after an execution the records are fetched, and how often again (ms). */
const FETCH_DELAYS = [400, 800, 1500, 3000, 6000];

/** Memory badges on the cells of every open notebook. */
export class CellBadges {
  constructor(
    private readonly model: MemoryModel,
    private readonly tracker: INotebookTracker,
    private readonly trans: ITrans,
    private readonly open: (target: IBadgeTarget) => unknown
  ) {
    tracker.widgetAdded.connect((_, panel) => this._watch(panel));
    tracker.forEach(panel => this._watch(panel));
    NotebookActions.executionScheduled.connect((_, { cell }) => {
      // Its old figures no longer describe it.
      this._remove(cell);
      this._scheduledAt.set(cell.model.id, Date.now());
    });
    NotebookActions.executed.connect((_, { notebook, cell }) => {
      const msgId = this._futureMsgId(cell);
      if (msgId) {
        this._msgIds.set(cell.model.id, msgId);
      }
      const panel = this._panelOf(notebook);
      if (panel) {
        this._schedule(panel, 0);
      }
    });
    model.cellsChanged.connect((_, kernelId) => {
      this.tracker.forEach(panel => {
        if (this._kernelId(panel) === kernelId) {
          this._render(panel);
        }
      });
    });
    model.stateChanged.connect(() => {
      if (model.units !== this._units) {
        this._units = model.units;
        this._renderAll();
      }
    });
  }

  get settings(): IBadgeSettings {
    return this._settings;
  }

  set settings(value: IBadgeSettings) {
    this._settings = value;
    this._renderAll();
    if (value.enabled) {
      this.tracker.forEach(panel => this._schedule(panel, 0));
    }
  }

  private _renderAll(): void {
    this.tracker.forEach(panel => this._render(panel));
  }

  private _panelOf(notebook: Notebook): NotebookPanel | null {
    return this.tracker.find(panel => panel.content === notebook) ?? null;
  }

  private _kernelId(panel: NotebookPanel): string | null {
    return panel.sessionContext.session?.kernel?.id ?? null;
  }

  private _futureMsgId(cell: Cell): string | null {
    if (cell.model.type !== 'code') {
      return null;
    }
    const future = (cell as CodeCell).outputArea?.future;
    return future?.msg?.header?.msg_id ?? null;
  }

  private _watch(panel: NotebookPanel): void {
    const fetch = (): void => this._schedule(panel, 0);
    panel.sessionContext.kernelChanged.connect(fetch);
    void panel.sessionContext.ready.then(fetch);
    panel.disposed.connect(() => {
      panel.sessionContext.kernelChanged.disconnect(fetch);
      const timer = this._timers.get(panel);
      if (timer) {
        clearTimeout(timer);
      }
      this._timers.delete(panel);
    });
  }

  /** Fetch the records of a notebook's kernel soon (attempt: which of FETCH_DELAYS). */
  private _schedule(panel: NotebookPanel, attempt: number): void {
    if (!this._settings.enabled || panel.isDisposed) {
      return;
    }
    const old = this._timers.get(panel);
    if (old) {
      clearTimeout(old);
    }
    const delay = FETCH_DELAYS[Math.min(attempt, FETCH_DELAYS.length - 1)];
    this._timers.set(
      panel,
      setTimeout(() => {
        this._timers.delete(panel);
        void this._fetch(panel, attempt);
      }, delay)
    );
  }

  private async _fetch(panel: NotebookPanel, attempt: number): Promise<void> {
    const kernelId = this._kernelId(panel);
    if (!kernelId || panel.isDisposed) {
      return;
    }
    const records = await this.model.fetchCells(kernelId);
    if (!records || panel.isDisposed) {
      return;
    }
    // cellsChanged rendered the badges; fetch again while an execution is not recorded yet.
    if (this._waiting(panel, records) && attempt + 1 < FETCH_DELAYS.length) {
      this._schedule(panel, attempt + 1);
    }
  }

  /** Whether a cell executed lately has no finished record yet. */
  private _waiting(
    panel: NotebookPanel,
    records: ReadonlyArray<ICellRecord>
  ): boolean {
    if (records.some(r => r.status === 'running')) {
      return true;
    }
    const recent = Date.now() - 30000;
    for (const cell of panel.content.widgets) {
      const scheduled = this._scheduledAt.get(cell.model.id);
      if (scheduled === undefined || scheduled < recent) {
        continue;
      }
      const msgId = this._msgIds.get(cell.model.id) ?? this._futureMsgId(cell);
      if (msgId && !records.some(r => r.msg_id === msgId)) {
        return true;
      }
    }
    return false;
  }

  private _render(panel: NotebookPanel): void {
    if (panel.isDisposed) {
      return;
    }
    const kernelId = this._kernelId(panel);
    const records = kernelId ? this.model.cells(kernelId) : null;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    if (!this._settings.enabled || !kernelId) {
      cells.forEach(cell => this._remove(cell));
      return;
    }
    if (!records) {
      return;
    }
    const refs: ICellRef[] = cells.map(cell => {
      const count = (cell as CodeCell).model.executionCount;
      const msgId =
        this._msgIds.get(cell.model.id) ?? this._futureMsgId(cell) ?? null;
      return {
        id: cell.model.id,
        msgId,
        executionCount: typeof count === 'number' ? count : null,
        source: cell.model.sharedModel.getSource()
      };
    });
    const matched = matchRecords(refs, records);
    const limit = this.model.kernel(kernelId)?.limit_bytes ?? null;
    const ctx = { trans: this.trans, units: this.model.units };
    for (const cell of cells) {
      const record = matched.get(cell.model.id);
      if (!record || !isNotable(record, limit, this._settings)) {
        this._remove(cell);
        continue;
      }
      const badge = this._badge(cell);
      if (!badge) {
        continue;
      }
      badge.target = {
        kernelId,
        msgId: record.msg_id ?? null,
        executionCount: record.execution_count
      };
      badge.display(badgeText(record, ctx), badgeTitle(record, ctx), record);
    }
  }

  private _badge(cell: Cell): CellBadge | null {
    const existing = this._badges.get(cell);
    if (existing && !existing.isDisposed) {
      return existing;
    }
    const layout = cell.inputArea?.layout;
    if (!(layout instanceof PanelLayout)) {
      return null;
    }
    const badge = new CellBadge(target => void this.open(target));
    layout.addWidget(badge);
    cell.addClass('jp-memguard-has-badge');
    this._badges.set(cell, badge);
    return badge;
  }

  private _remove(cell: Cell): void {
    const badge = this._badges.get(cell);
    if (badge) {
      this._badges.delete(cell);
      badge.dispose();
      cell.removeClass('jp-memguard-has-badge');
    }
  }

  private _settings: IBadgeSettings = DEFAULT_BADGE_SETTINGS;
  private _units: Units | null = null;
  private _badges = new WeakMap<Cell, CellBadge>();
  private _msgIds = new Map<string, string>();
  private _scheduledAt = new Map<string, number>();
  private _timers = new Map<NotebookPanel, ReturnType<typeof setTimeout>>();
}
