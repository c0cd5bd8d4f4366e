/**
 * The memory timeline of a kernel: its memory over time against its limit and the warn and
 * stop lines, with one span per cell under it (keyboard-reachable, keyed by cell, so React
 * updates the SVG in place as the view refreshes).
 */
import * as React from 'react';

import { ISpan, ITimelineLayout } from './timeline';

/** Pixels around the plot of the timeline (left: the y labels). */
// The right margin holds half of the last time label ("00:12:55"), centred on its tick.
export const TIMELINE_MARGIN = { left: 64, right: 30, top: 10, gap: 8 };
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
