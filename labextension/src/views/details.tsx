/**
 * The Details view (a main-area tab): for a running kernel, or for a record, the story in
 * the server's words and a timeline of the kernel's memory against its limit and lines, each
 * cell drawn as a span (hover: its figures, in a card clear of the y axis; click: kept
 * shown), its cells in a table, the evidence, and a footnote that names how the figures
 * were measured. A running kernel's view follows the model's poll while it is shown.
 */
import { VDomRenderer } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { formatBytes, keepFigures } from '../format';
import { ICellRecord, ITermination } from '../model/types';
import {
  badgeText,
  cellCode,
  cellFigures,
  cellLabel,
  cellStatusText
} from '../texts/cells';
import { ITrans, kernelLabel } from '../texts/common';
import {
  detailsFootnote,
  evidenceLines,
  timelineLinesText
} from '../texts/details';
import { linesText, usageText } from '../texts/status';
import { DetailsModel } from './detailsModel';
import { cellKey, ISpan, timelineLayout } from './timeline';
import { TIMELINE_MARGIN, TimelineChart } from './timelineChart';

type Message = Parameters<Widget['processMessage']>[0];

/** A clock time for the time axis: "14:03:10", or "14:03" for ticks a minute or more apart. */
function clock(seconds: number, step: number): string {
  const date = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const hm = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return step >= 60 ? hm : `${hm}:${pad(date.getSeconds())}`;
}

/** Labelled figures (a cell's, a record's evidence) as a definition list. */
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

/** The server's words for a record: headline, summary, advice. */
function Story(props: {
  t: ITermination;
  trans: ITrans;
  title: 'h2' | 'h3';
}): JSX.Element {
  const { t, trans } = props;
  const when = t.ended_at ? new Date(t.ended_at * 1000).toLocaleString() : '';
  const Title = props.title;
  return (
    <div className="jp-memguard-details-story" data-verdict={t.verdict}>
      <Title className="jp-memguard-details-title">{t.words.headline}</Title>
      <div className="jp-memguard-details-meta">
        {[t.path ?? t.kernel_id.slice(0, 8), when].filter(Boolean).join(' · ')}
      </div>
      <p className="jp-memguard-details-summary">
        {keepFigures(t.words.summary)}
      </p>
      {t.words.advice ? (
        <p className="jp-memguard-advice">
          {keepFigures(trans.__('Advice: %1', t.words.advice))}
        </p>
      ) : null}
    </div>
  );
}

const PLOT_HEIGHT = 170;
const HOVER_WIDTH = 300;

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
    this.model.start();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.stop();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._measure();
    if (this.isVisible) {
      this.model.start();
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this.model.stop();
    super.onBeforeDetach(msg);
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

  private get _ctx() {
    return { trans: this.trans, units: this.model.memory.units };
  }

  protected render(): JSX.Element {
    const model = this.model;
    const trans = this.trans;
    const t = model.termination;
    const kernel = model.kernel;
    const name = kernelLabel(model.path, model.kernelId, trans);
    return (
      <div className="jp-memguard-details-content">
        {model.target.kind === 'termination' && t ? (
          <Story t={t} trans={trans} title="h2" />
        ) : (
          this._live(name)
        )}
        {this._timeline(name)}
        {this._cellList()}
        {t ? this._evidence(t) : null}
        <p className="jp-memguard-details-hint">
          {detailsFootnote(
            kernel?.memory?.method ?? null,
            kernel?.cells_source ?? null,
            trans
          )}
        </p>
        {model.target.kind === 'kernel' && model.gone && t ? (
          <div className="jp-memguard-details-ended">
            <Story t={t} trans={trans} title="h3" />
          </div>
        ) : null}
      </div>
    );
  }

  /** A running kernel: its memory now and its lines. */
  private _live(name: string): JSX.Element {
    const model = this.model;
    const trans = this.trans;
    const ctx = this._ctx;
    const kernel = model.kernel;
    const m = kernel?.memory ?? null;
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
              keepFigures(usageText(m.used_bytes, kernel.limit_bytes, ctx))
            )}{' '}
            {keepFigures(linesText(kernel, model.memory.status?.settings, ctx))}
          </p>
        ) : !model.loaded ? (
          <p>{trans.__('Loading…')}</p>
        ) : null}
      </div>
    );
  }

  private _timeline(name: string): JSX.Element {
    const model = this.model;
    const trans = this.trans;
    const ctx = this._ctx;
    const { limit, warn, halt } = model.limits;
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
      base: ctx.units === 'binary' ? 1024 : 1000
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
            {!model.loaded
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
              size={bytes => formatBytes(bytes, ctx.units)}
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
          {keepFigures(timelineLinesText(layout.lines, ctx))}
          {above.length
            ? ` ${trans.__('(the chart is zoomed to the kernel’s memory; these lines are above it)')}`
            : ''}
        </p>
        {this._selected()}
      </div>
    );
  }

  private _spanLabel(span: ISpan): string {
    const cell = span.cell;
    return [
      this.trans.__('Cell %1', cellLabel(cell)),
      cell.first_line,
      badgeText(cell, this._ctx),
      cellStatusText(cell, this.trans)
    ]
      .filter(Boolean)
      .join(' · ');
  }

  /** The hovered cell's card: over the plot, never over the y axis labels at its left. */
  private _hoverCard(span: ISpan): JSX.Element {
    const m = TIMELINE_MARGIN;
    const total = m.left + this._plotWidth + m.right;
    const width = Math.min(HOVER_WIDTH, total - m.left);
    const centre = m.left + span.x + span.width / 2;
    const left = Math.max(m.left, Math.min(centre - width / 2, total - width));
    return (
      <div
        className="jp-memguard-timeline-hover"
        role="tooltip"
        style={{
          left: `${left}px`,
          width: `${width}px`,
          bottom: `calc(100% - ${m.top + PLOT_HEIGHT}px)`
        }}
      >
        {this._cellCard(span.cell)}
      </div>
    );
  }

  private _cellCard(cell: ICellRecord): JSX.Element {
    return (
      <div className="jp-memguard-cell-card" data-key={cellKey(cell)}>
        <div className="jp-memguard-cell-card-title">
          {this.trans.__('Cell %1', cellLabel(cell))}
        </div>
        {cell.code ? (
          <pre className="jp-memguard-cell-code">{cell.code}</pre>
        ) : null}
        {definitions(cellFigures(cell, this._ctx))}
      </div>
    );
  }

  private _selected(): JSX.Element | null {
    const cell = this.model.cell(this.model.selected);
    return cell ? (
      <div className="jp-memguard-timeline-selected">
        {this._cellCard(cell)}
      </div>
    ) : null;
  }

  private _cellList(): JSX.Element | null {
    const model = this.model;
    const trans = this.trans;
    const cells = model.cells;
    if (!cells.length) {
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
            {cells.slice(0, 50).map(cell => {
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
                    {cellCode(cell, trans)}
                  </td>
                  <td>{badgeText(cell, this._ctx)}</td>
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
    // The cells that kept something worth naming (a mebibyte or more).
    const top = t.evidence.top_cells.filter(
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
                  <code>{cellCode(cell, trans)}</code> —{' '}
                  {badgeText(cell, this._ctx)}
                </li>
              ))}
            </ul>
          </>
        ) : null}
        <h3 className="jp-memguard-section">{trans.__('Evidence')}</h3>
        {definitions(evidenceLines(t, this._ctx), 'jp-memguard-evidence')}
      </div>
    );
  }

  private _plotWidth = 600;
}
