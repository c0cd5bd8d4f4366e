/**
 * Charts: a small memory chart (the recent samples against the limit, with the warn and stop
 * lines), a stacked bar (who holds the memory), and the timeline of a kernel's memory with
 * one span per cell. All SVG or plain elements that React updates in place.
 */
import * as React from 'react';

import { IBar, ISegment } from './breakdown';
import { chartY, sparklinePoints } from './format';
import { ISpan, ITimelineLayout } from './timeline';

export interface IChartProps {
  history: ReadonlyArray<[number, number]>;
  /** The top of the chart (the kernel's limit). */
  limit: number;
  warn?: number | null;
  halt?: number | null;
  width?: number;
  height?: number;
  /** Accessible description. */
  label: string;
  className?: string;
}

export function MemoryChart(props: IChartProps): JSX.Element | null {
  const width = props.width ?? 200;
  const height = props.height ?? 48;
  const points = sparklinePoints(props.history, width, height, props.limit);
  if (!points) {
    return null;
  }
  const line = (bytes: number | null | undefined, name: string) =>
    bytes ? (
      <line
        className={`jp-memguard-chart-${name}`}
        x1={0}
        x2={width}
        y1={chartY(bytes, height, props.limit)}
        y2={chartY(bytes, height, props.limit)}
      />
    ) : null;
  return (
    <svg
      className={`jp-memguard-chart ${props.className ?? ''}`}
      viewBox={`0 0 ${width} ${height}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={props.label}
    >
      <title>{props.label}</title>
      {line(props.warn, 'warn')}
      {line(props.halt, 'halt')}
      <polyline className="jp-memguard-chart-line" points={points} />
    </svg>
  );
}

/** A stacked bar: who holds how much of a whole (the budget, a GPU). */
export function StackedBar(props: {
  bar: IBar;
  /** The legend's name of a segment, and a sentence about it (the segment's hover text). */
  describe: (segment: ISegment) => string;
  label: string;
  className?: string;
}): JSX.Element {
  return (
    <div
      className={`jp-memguard-stack ${props.className ?? ''}`}
      role="img"
      aria-label={props.label}
    >
      {props.bar.segments.map(segment => (
        <div
          key={segment.key}
          className={segmentClass(segment)}
          data-kind={segment.kind}
          data-key={segment.key}
          style={{ width: `${(segment.fraction * 100).toFixed(3)}%` }}
          title={props.describe(segment)}
        />
      ))}
    </div>
  );
}

/** The CSS classes of a segment (its kind, and a kernel's colour). */
export function segmentClass(segment: ISegment): string {
  const colour =
    segment.kind === 'kernel' ? ` jp-memguard-seg-colour${segment.colour}` : '';
  return `jp-memguard-seg jp-memguard-seg-${segment.kind}${colour}`;
}

/** Pixels around the plot of the timeline (left: the y labels). */
export const TIMELINE_MARGIN = { left: 64, right: 12, top: 10, gap: 8 };
/** Height of one lane of cell spans, and of the time axis under them. */
export const LANE_HEIGHT = 20;
const AXIS_HEIGHT = 22;

export interface ITimelineChartProps {
  layout: ITimelineLayout;
  /** The key of the selected span, and of the hovered one. */
  selected: string | null;
  hovered: string | null;
  onHover: (key: string | null) => void;
  onSelect: (key: string) => void;
  size: (bytes: number) => string;
  time: (seconds: number, step: number) => string;
  lineLabel: (kind: string, bytes: number) => string;
  spanLabel: (span: ISpan) => string;
  label: string;
}

/** The total height of a timeline chart for a layout. */
export function timelineHeight(layout: ITimelineLayout): number {
  return (
    TIMELINE_MARGIN.top +
    layout.height +
    TIMELINE_MARGIN.gap +
    layout.lanes * LANE_HEIGHT +
    AXIS_HEIGHT
  );
}

/**
 * The memory timeline: the kernel's memory over time against its limit and the warn and stop
 * lines, and under it one span per cell. Re-rendering with a new layout updates the SVG in
 * place (spans are keyed by cell).
 */
export function TimelineChart(props: ITimelineChartProps): JSX.Element {
  const { layout } = props;
  const m = TIMELINE_MARGIN;
  const width = m.left + layout.width + m.right;
  const height = timelineHeight(layout);
  const lanesTop = layout.height + m.gap;
  const axisTop = lanesTop + layout.lanes * LANE_HEIGHT;
  const marked = [props.selected, props.hovered].filter(
    (key, index, all): key is string => !!key && all.indexOf(key) === index
  );
  const bands = layout.spans.filter(span => marked.includes(span.key));
  return (
    <svg
      className="jp-memguard-timeline-chart"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="group"
      aria-label={props.label}
    >
      <g transform={`translate(${m.left},${m.top})`}>
        <rect
          className="jp-memguard-timeline-plot"
          x={0}
          y={0}
          width={layout.width}
          height={layout.height}
        />
        {layout.yTicks.map(tick => (
          <g key={tick.bytes} className="jp-memguard-timeline-ytick">
            <line x1={-4} x2={0} y1={tick.y} y2={tick.y} />
            <text x={-6} y={tick.y + 4} textAnchor="end">
              {props.size(tick.bytes)}
            </text>
          </g>
        ))}
        {bands.map(span => (
          <rect
            key={`band-${span.key}`}
            className={`jp-memguard-span-band${span.key === props.selected ? ' jp-mod-selected' : ''}`}
            x={span.x}
            y={0}
            width={span.width}
            height={layout.height}
          />
        ))}
        {layout.lines
          .filter(line => line.onChart)
          .map(line => (
            <g key={line.kind} className="jp-memguard-timeline-line">
              <line
                className={`jp-memguard-chart-${line.kind}`}
                x1={0}
                x2={layout.width}
                y1={line.y}
                y2={line.y}
              />
              <text
                className={`jp-memguard-timeline-linelabel jp-memguard-timeline-${line.kind}`}
                x={line.kind === 'warn' ? 4 : layout.width - 4}
                y={line.y - 3}
                textAnchor={line.kind === 'warn' ? 'start' : 'end'}
              >
                {props.lineLabel(line.kind, line.bytes)}
              </text>
            </g>
          ))}
        {layout.points ? (
          <polyline className="jp-memguard-chart-line" points={layout.points} />
        ) : null}
        <g
          className="jp-memguard-spans"
          transform={`translate(0,${lanesTop})`}
          onMouseLeave={() => props.onHover(null)}
        >
          {layout.spans.map(span => (
            <g
              key={span.key}
              className={`jp-memguard-span jp-memguard-span-${span.cell.status}${
                span.key === props.selected ? ' jp-mod-selected' : ''
              }${span.running ? ' jp-mod-running' : ''}`}
              data-key={span.key}
              data-execution-count={span.cell.execution_count ?? ''}
              role="button"
              tabIndex={0}
              aria-label={props.spanLabel(span)}
              onMouseEnter={() => props.onHover(span.key)}
              onFocus={() => props.onHover(span.key)}
              onBlur={() => props.onHover(null)}
              onClick={() => props.onSelect(span.key)}
              onKeyDown={event => {
                if (event.key === 'Enter' || event.key === ' ') {
                  event.preventDefault();
                  props.onSelect(span.key);
                }
              }}
            >
              <rect
                x={span.x}
                y={span.lane * LANE_HEIGHT}
                width={span.width}
                height={LANE_HEIGHT - 4}
                rx={2}
              />
              {span.label ? (
                <text
                  x={span.x + span.width / 2}
                  y={span.lane * LANE_HEIGHT + LANE_HEIGHT / 2 + 2}
                  textAnchor="middle"
                >
                  {span.label}
                </text>
              ) : null}
            </g>
          ))}
        </g>
        <g
          className="jp-memguard-timeline-axis"
          transform={`translate(0,${axisTop})`}
        >
          <line x1={0} x2={layout.width} y1={0} y2={0} />
          {layout.ticks.map(tick => (
            <g key={tick.time}>
              <line x1={tick.x} x2={tick.x} y1={0} y2={4} />
              <text x={tick.x} y={15} textAnchor="middle">
                {props.time(tick.time, layout.tickStep)}
              </text>
            </g>
          ))}
        </g>
      </g>
    </svg>
  );
}
