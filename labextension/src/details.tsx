/**
 * The Details view (a main-area tab): for a running kernel, or for a kernel stop, the story
 * in plain words and a timeline of the kernel's memory over its last minutes against its
 * limit and the warn and stop lines, with each cell drawn as a span; hovering a span shows
 * that cell's figures, clicking it keeps them shown. A running kernel's view refreshes with a
 * Poll while it is visible; React updates the chart in place instead of rebuilding it.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { LabIcon, VDomModel, VDomRenderer } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { getKernel } from './api';
import { TIMELINE_MARGIN, TimelineChart } from './chart';
import { basename, formatBytes, pollInterval, usedBytes } from './format';
import { terminationKey } from './incidents';
import {
  badgeText,
  cellFigures,
  cellStatusText,
  evidenceLines,
  ITrans,
  kernelLabel,
  linesText,
  memoryMethodText,
  terminationHeadline,
  terminationSummary,
  timelineLinesText,
  usageText
} from './messages';
import { MemoryModel } from './model';
import { cellKey, cellLabel, ISpan, timelineLayout } from './timeline';
import { ICellRecord, IKernelInfo, ITermination } from './types';

type Message = Parameters<Widget['processMessage']>[0];

/** What a Details view shows: a running kernel, or a kernel stop. */
export type DetailsTarget =
  | { kind: 'kernel'; kernelId: string }
  | { kind: 'termination'; termination: ITermination };

/** Which cell to show first: its execute_request's msg_id, else its execution count. */
export interface ICellFocus {
  msgId?: string | null;
  executionCount?: number | null;
}

/** The cells of a termination's evidence: the running one and the recent ones, once each. */
export function evidenceCells(t: ITermination): ICellRecord[] {
  const e = t.evidence ?? {};
  const all = [...(e.recent_cells ?? [])];
  const running = e.running_cell;
  if (running && !all.some(c => cellKey(c) === cellKey(running))) {
    all.unshift(running);
  }
  return all.sort((a, b) => b.started_at - a.started_at);
}

/** The state of one Details view. */
export class DetailsModel extends VDomModel {
  constructor(
    readonly memory: MemoryModel,
    readonly target: DetailsTarget
  ) {
    super();
    this.kernelId =
      target.kind === 'kernel' ? target.kernelId : target.termination.kernel_id;
    if (target.kind === 'termination') {
      const t = target.termination;
      this.history = [...(t.evidence?.history ?? [])];
      this.cells = evidenceCells(t);
    } else {
      this.kernel = memory.kernel(target.kernelId);
      this.history = [...(memory.history.get(target.kernelId) ?? [])];
      this.cells = memory.cells(target.kernelId) ?? [];
      this._poll = new Poll({
        auto: false,
        factory: () => this._fetch(),
        frequency: {
          interval: pollInterval(memory.refreshSeconds, false),
          backoff: true,
          max: 60000
        },
        name: 'jupyter-memguard:details',
        standby: 'when-hidden'
      });
    }
    memory.stateChanged.connect(this._onMemory, this);
  }

  readonly kernelId: string;
  /** The kernel as the server last described it (a running kernel's view). */
  kernel: IKernelInfo | null = null;
  history: [number, number][] = [];
  /** Newest first. */
  cells: ICellRecord[] = [];
  /** The kernel is gone (a running kernel's view whose kernel ended). */
  gone = false;
  /** The first fetch is done (a running kernel's view). */
  loaded = false;
  /** The key of the span clicked (or opened from a badge), and of the one hovered. */
  selected: string | null = null;
  hovered: string | null = null;

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

  /** Start refreshing (a running kernel's view); the first fetch at once. */
  start(): void {
    if (this._poll && !this.gone && !this.isDisposed) {
      void this._poll.start();
      void this._poll.refresh();
    }
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
    this.memory.stateChanged.disconnect(this._onMemory, this);
    this._poll?.dispose();
    super.dispose();
  }

  private _applyFocus(): void {
    const focus = this._focus;
    if (!focus) {
      return;
    }
    const found =
      (focus.msgId && this.cells.find(c => c.msg_id === focus.msgId)) ||
      (focus.executionCount !== null && focus.executionCount !== undefined
        ? this.cells.find(c => c.execution_count === focus.executionCount)
        : undefined);
    if (found) {
      this._focus = null;
      this.select(cellKey(found));
    }
  }

  private _onMemory(): void {
    if (this._poll) {
      this._poll.frequency = {
        interval: pollInterval(this.memory.refreshSeconds, false),
        backoff: true,
        max: 60000
      };
    }
    this.stateChanged.emit();
  }

  private async _fetch(): Promise<void> {
    const [info, cells] = await Promise.all([
      getKernel(this.kernelId).catch(error => {
        if ((error as { status?: number }).status === 404) {
          return null;
        }
        throw error;
      }),
      this.memory.fetchCells(this.kernelId)
    ]);
    this.loaded = true;
    if (!info) {
      this.gone = true;
      this._poll?.dispose();
      this._poll = null;
      void this.memory.askJournal(this.kernelId, 600);
      this.stateChanged.emit();
      return;
    }
    this.kernel = info;
    if (info.history?.length) {
      this.history = info.history;
    }
    if (cells) {
      this.cells = cells;
    }
    this._applyFocus();
    this.stateChanged.emit();
  }

  private _poll: Poll | null = null;
  private _focus: ICellFocus | null = null;
}

/** A clock time for the time axis: "14:03:10", or "14:03" for ticks a minute or more apart. */
function clock(seconds: number, step: number): string {
  const date = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const hm = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return step >= 60 ? hm : `${hm}:${pad(date.getSeconds())}`;
}

/** The server's advice after a kernel stop, if it gave any. */
function advice(t: ITermination, trans: ITrans): JSX.Element | null {
  return t.advice ? (
    <p className="jp-memguard-advice">{trans.__('Advice: %1', t.advice)}</p>
  ) : null;
}

/** Labelled figures (a cell's, a stop's evidence) as a definition list. */
function definitions(
  pairs: [string, string][],
  className?: string
): JSX.Element {
  return (
    <dl className={className}>
      {pairs.map(([label, value]) => (
        <React.Fragment key={label}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </React.Fragment>
      ))}
    </dl>
  );
}

const PLOT_HEIGHT = 170;
const HOVER_WIDTH = 300;

/** The Details view. */
export class DetailsView extends VDomRenderer<DetailsModel> {
  constructor(
    model: DetailsModel,
    private readonly trans: ITrans
  ) {
    super(model);
    this.addClass('jp-memguard-details-view');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._measure();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._measure();
    this.model.start();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this._measure(msg.width);
  }

  private _measure(width = -1): void {
    const measured = width >= 0 ? width : this.node.clientWidth;
    const plot = Math.max(
      160,
      Math.floor(measured - 32 - TIMELINE_MARGIN.left - TIMELINE_MARGIN.right)
    );
    if (measured > 0 && plot !== this._plotWidth) {
      this._plotWidth = plot;
      this.update();
    }
  }

  protected render(): JSX.Element {
    const model = this.model;
    const trans = this.trans;
    const units = model.memory.units;
    const ctx = { trans, units };
    const t = model.termination;
    const name = kernelLabel(model.path, model.kernelId, trans);
    return (
      <div className="jp-memguard-details-content">
        {model.target.kind === 'termination' && t
          ? this._story(t)
          : this._live(name)}
        {this._timeline(name)}
        {this._cellList()}
        {t ? this._evidence(t) : null}
        <p className="jp-memguard-details-hint">
          {trans.__(
            'Times are the server’s. Memory here is the RSS of the kernel’s processes, as sampled; cells show memory before, after and at their peak.'
          )}
        </p>
        {model.target.kind === 'kernel' && model.gone && t ? (
          <div className="jp-memguard-details-ended">
            <h3>{terminationHeadline(t, trans)}</h3>
            <p>{terminationSummary(t, ctx)}</p>
            {advice(t, trans)}
          </div>
        ) : null}
      </div>
    );
  }

  /** A kernel stop: what happened, what it means, the advice. */
  private _story(t: ITermination): JSX.Element {
    const trans = this.trans;
    const ctx = { trans, units: this.model.memory.units };
    const when = t.ended_at ? new Date(t.ended_at * 1000).toLocaleString() : '';
    return (
      <div className="jp-memguard-details-story">
        <h2 className="jp-memguard-details-title">
          {terminationHeadline(t, trans)}
        </h2>
        <div className="jp-memguard-details-meta">
          {[t.path ?? t.kernel_id.slice(0, 8), when]
            .filter(Boolean)
            .join(' · ')}
        </div>
        <p className="jp-memguard-details-summary">
          {terminationSummary(t, ctx)}
        </p>
        {advice(t, trans)}
      </div>
    );
  }

  /** A running kernel: its memory now, its lines, how it was measured. */
  private _live(name: string): JSX.Element {
    const model = this.model;
    const trans = this.trans;
    const ctx = { trans, units: model.memory.units };
    const kernel = model.kernel;
    const m = kernel?.memory ?? null;
    const method = m ? memoryMethodText(m, ctx) : null;
    return (
      <div className="jp-memguard-details-story">
        <h2 className="jp-memguard-details-title">
          {trans.__('Memory of %1', model.path ?? name)}
        </h2>
        {model.gone ? (
          <p className="jp-memguard-details-gone">
            {trans.__('This kernel has stopped; its last figures are shown.')}
          </p>
        ) : null}
        {kernel && m ? (
          <p className="jp-memguard-details-summary">
            {trans.__(
              'The kernel uses %1.',
              usageText(usedBytes(m), kernel.limit_bytes, ctx)
            )}{' '}
            {linesText(kernel, model.memory.status?.settings, ctx)}
          </p>
        ) : !model.loaded ? (
          <p>{trans.__('Loading…')}</p>
        ) : null}
        {method ? <p className="jp-memguard-details-method">{method}</p> : null}
      </div>
    );
  }

  private _limits(): {
    limit: number;
    warn: number | null;
    halt: number | null;
  } {
    const model = this.model;
    const kernel = model.kernel;
    const t = model.termination;
    if (kernel && model.target.kind === 'kernel') {
      return {
        limit: kernel.limit_bytes,
        warn: kernel.warn_bytes,
        halt: kernel.halt_bytes
      };
    }
    const limit = Number(t?.evidence?.limit_bytes ?? kernel?.limit_bytes ?? 0);
    const { warn, halt } = model.memory.fractions;
    return {
      limit,
      warn: limit ? Math.round(limit * warn) : null,
      halt: limit ? Math.round(limit * halt) : null
    };
  }

  private _timeline(name: string): JSX.Element {
    const model = this.model;
    const trans = this.trans;
    const units = model.memory.units;
    const ctx = { trans, units };
    const { limit, warn, halt } = this._limits();
    const t = model.termination;
    const layout = timelineLayout({
      history: model.history,
      cells: model.cells,
      limit,
      warn,
      halt,
      end: model.target.kind === 'termination' ? (t?.ended_at ?? null) : null,
      width: this._plotWidth,
      height: PLOT_HEIGHT,
      base: units === 'binary' ? 1024 : 1000
    });
    const hovered = layout.spans.find(s => s.key === model.hovered) ?? null;
    const above = layout.lines.filter(line => !line.onChart);
    const minutes = Math.max(1, Math.round((layout.end - layout.start) / 60));
    const empty = !layout.points && !layout.spans.length;
    return (
      <div className="jp-memguard-timeline">
        <h3 className="jp-memguard-section">
          {trans._n(
            'Memory and cells over the last minute',
            'Memory and cells over the last %1 minutes',
            minutes
          )}
        </h3>
        {empty ? (
          <p className="jp-memguard-empty">
            {model.target.kind === 'kernel' && !model.loaded
              ? trans.__('Loading…')
              : trans.__('memguard has no samples of this kernel to show.')}
          </p>
        ) : (
          <div className="jp-memguard-timeline-box">
            <TimelineChart
              layout={layout}
              selected={model.selected}
              hovered={model.hovered}
              onHover={key => model.hover(key)}
              onSelect={key =>
                model.select(key === model.selected ? null : key)
              }
              size={bytes => formatBytes(bytes, units)}
              time={clock}
              lineLabel={(kind, bytes) =>
                timelineLinesText([{ kind, bytes }], ctx)
              }
              spanLabel={span => this._spanLabel(span)}
              label={trans.__(
                'Memory of %1 over time, with its cells as spans',
                name
              )}
            />
            {hovered ? this._hoverCard(hovered) : null}
          </div>
        )}
        <p className="jp-memguard-timeline-key">
          {timelineLinesText(layout.lines, ctx)}
          {above.length
            ? ` ${trans.__('(the chart is zoomed to the kernel’s memory; these lines are above it)')}`
            : ''}
        </p>
        {this._selected()}
      </div>
    );
  }

  private _spanLabel(span: ISpan): string {
    const ctx = { trans: this.trans, units: this.model.memory.units };
    const cell = span.cell;
    const text = badgeText(cell, ctx);
    return [
      this.trans.__('Cell %1', cellLabel(cell)),
      cell.first_line,
      text,
      cellStatusText(cell, this.trans)
    ]
      .filter(Boolean)
      .join(' · ');
  }

  private _hoverCard(span: ISpan): JSX.Element {
    const total =
      TIMELINE_MARGIN.left + this._plotWidth + TIMELINE_MARGIN.right;
    const centre = TIMELINE_MARGIN.left + span.x + span.width / 2;
    const left = Math.max(
      0,
      Math.min(centre - HOVER_WIDTH / 2, total - HOVER_WIDTH)
    );
    return (
      <div
        className="jp-memguard-timeline-hover"
        role="tooltip"
        style={{
          left: `${left}px`,
          width: `${HOVER_WIDTH}px`,
          bottom: `calc(100% - ${TIMELINE_MARGIN.top + PLOT_HEIGHT}px)`
        }}
      >
        {this._cellCard(span.cell)}
      </div>
    );
  }

  private _cellCard(cell: ICellRecord): JSX.Element {
    const ctx = { trans: this.trans, units: this.model.memory.units };
    return (
      <div className="jp-memguard-cell-card" data-key={cellKey(cell)}>
        <div className="jp-memguard-cell-card-title">
          {this.trans.__('Cell %1', cellLabel(cell))}
        </div>
        <pre className="jp-memguard-cell-code">
          {cell.code || cell.first_line}
        </pre>
        {definitions(cellFigures(cell, ctx))}
      </div>
    );
  }

  private _selected(): JSX.Element | null {
    const cell = this.model.cell(this.model.selected);
    if (!cell) {
      return null;
    }
    return (
      <div className="jp-memguard-timeline-selected">
        {this._cellCard(cell)}
      </div>
    );
  }

  private _cellList(): JSX.Element | null {
    const model = this.model;
    const trans = this.trans;
    const ctx = { trans, units: model.memory.units };
    if (!model.cells.length) {
      return null;
    }
    return (
      <div className="jp-memguard-cell-list">
        <h3 className="jp-memguard-section">
          {trans.__('Cells, newest first')}
        </h3>
        <table>
          <thead>
            <tr>
              <th>{trans.__('Cell')}</th>
              <th>{trans.__('Code')}</th>
              <th>{trans.__('Change · peak')}</th>
              <th>{trans.__('Status')}</th>
            </tr>
          </thead>
          <tbody>
            {model.cells.slice(0, 50).map(cell => {
              const key = cellKey(cell);
              return (
                <tr
                  key={key}
                  data-key={key}
                  className={key === model.selected ? 'jp-mod-selected' : ''}
                  onClick={() => model.select(key)}
                >
                  <td>{cellLabel(cell)}</td>
                  <td className="jp-memguard-cell-list-code">
                    {cell.first_line}
                  </td>
                  <td>{badgeText(cell, ctx)}</td>
                  <td>{cellStatusText(cell, trans)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    );
  }

  private _evidence(t: ITermination): JSX.Element {
    const trans = this.trans;
    const ctx = { trans, units: this.model.memory.units };
    // The cells that kept something worth naming (a mebibyte or more).
    const top = (t.evidence?.top_cells ?? []).filter(
      c => (c.delta_bytes ?? 0) >= 1024 ** 2
    );
    return (
      <div className="jp-memguard-details-evidence">
        {top.length ? (
          <>
            <h3 className="jp-memguard-section">
              {trans.__('Cells that kept the most memory')}
            </h3>
            <ul className="jp-memguard-top-cells">
              {top.map(cell => (
                <li key={cellKey(cell)}>
                  <button
                    className="jp-memguard-link"
                    onClick={() => this.model.select(cellKey(cell))}
                  >
                    {cellLabel(cell)}
                  </button>{' '}
                  <code>{cell.first_line}</code> — {badgeText(cell, ctx)}
                </li>
              ))}
            </ul>
          </>
        ) : null}
        <h3 className="jp-memguard-section">{trans.__('Evidence')}</h3>
        {definitions(evidenceLines(t, ctx), 'jp-memguard-evidence')}
      </div>
    );
  }

  private _plotWidth = 600;
}

/** The main-area tabs of Details views, one per kernel and per kernel stop. */
export class DetailsViews {
  constructor(
    private readonly options: {
      memory: MemoryModel;
      trans: ITrans;
      icon: LabIcon;
      /** Add a widget to the main area and show it. */
      show: (widget: Widget) => void;
    }
  ) {}

  /** Open (or show again) the view of a running kernel, at a cell if given. */
  openKernel(kernelId: string, focus: ICellFocus | null = null): void {
    this._open(`k-${kernelId}`, { kind: 'kernel', kernelId }, focus);
  }

  /** Open (or show again) the view of a kernel stop. */
  openTermination(t: ITermination, focus: ICellFocus | null = null): void {
    this._open(
      `t-${terminationKey(t)}`,
      { kind: 'termination', termination: t },
      focus
    );
  }

  private _open(
    key: string,
    target: DetailsTarget,
    focus: ICellFocus | null
  ): void {
    const { memory, trans } = this.options;
    let widget = this._widgets.get(key);
    if (!widget || widget.isDisposed) {
      const model = new DetailsModel(memory, target);
      const content = new DetailsView(model, trans);
      widget = new MainAreaWidget({ content });
      widget.id = `jp-memguard-details-${key.replace(/[^\w-]/g, '_')}`;
      widget.addClass('jp-memguard-details');
      const path =
        target.kind === 'kernel'
          ? memory.kernel(target.kernelId)?.path
          : target.termination.path;
      const name = kernelLabel(
        path,
        target.kind === 'kernel'
          ? target.kernelId
          : target.termination.kernel_id,
        trans
      );
      widget.title.label =
        target.kind === 'kernel'
          ? trans.__('Memory: %1', name)
          : trans.__('Kernel stop: %1', name);
      widget.title.caption =
        target.kind === 'kernel'
          ? trans.__('Memory timeline of %1', path ?? name)
          : `${terminationHeadline(target.termination, trans)} (${basename(path) ?? name})`;
      widget.title.icon = this.options.icon;
      widget.title.closable = true;
      const stored = widget;
      this._widgets.set(key, stored);
      stored.disposed.connect(() => {
        model.dispose();
        if (this._widgets.get(key) === stored) {
          this._widgets.delete(key);
        }
      });
    }
    (widget.content as DetailsView).model.focus(focus);
    this.options.show(widget);
  }

  private _widgets = new Map<string, MainAreaWidget<DetailsView>>();
}
