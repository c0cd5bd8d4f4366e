/**
 * Memory badges on cells: after each execution, the kernel's cell records are fetched
 * (through the model) and each executed cell whose memory changed notably gets a small badge
 * under its input saying what the cell did ("+3.6 GiB · peak +4.1 GiB": its change, and its
 * own peak above where it started); a click opens the memory timeline at that cell.
 */
import { Cell } from '@jupyterlab/cells';
import {
  INotebookTracker,
  Notebook,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { PanelLayout, Widget } from '@lumino/widgets';

import { MemoryModel } from '../model/model';
import { ICellRecord, Units } from '../model/types';
import { badgeText, badgeTitle } from '../texts/cells';
import { ITrans } from '../texts/common';
import {
  DEFAULT_BADGE_SETTINGS,
  IBadgeSettings,
  isNotable
} from './cellRecords';
import { CellIndex } from './notebooks';

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
    private readonly index: CellIndex,
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
    NotebookActions.executed.connect((_, { notebook }) => {
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
      const msgId = this.index.msgId(cell);
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
    const matched = this.index.match(panel, records);
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
  private _scheduledAt = new Map<string, number>();
  private _timers = new Map<NotebookPanel, ReturnType<typeof setTimeout>>();
}
