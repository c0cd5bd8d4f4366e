/**
 * Small charts: a kernel's recent memory against its limit, with its warn and stop lines
 * (labelled where there is room: the status tooltip), and a stacked bar of who holds a whole
 * (the budget, a GPU). SVG or plain elements that React updates in place.
 */
import * as React from 'react';

import { IBar, ISegment } from './breakdown';
import { chartY, sparklinePoints, spreadLabels } from './geometry';

export type ChartLine = 'warn' | 'halt' | 'limit';

export interface IChartProps {
  history: ReadonlyArray<readonly [number, number]>;
  /** The top of the chart (the kernel's limit). */
  limit: number;
  warn?: number | null;
  halt?: number | null;
  width?: number;
  height?: number;
  /** Accessible description. */
  label: string;
  className?: string;
  /** Labels for the lines ("warn 480 MiB"): drawn at the right, at the chart's own size. */
  lineLabel?: (kind: ChartLine, bytes: number) => string;
}

/** Room at the right of a labelled chart, and above it (for the limit's label). */
const LABEL_WIDTH = 92;
const LABEL_GAP = 10;
const TOP = 5;

export function MemoryChart(props: IChartProps): JSX.Element | null {
  const width = props.width ?? 200;
  const height = props.height ?? 48;
  const labelled = !!props.lineLabel;
  const plotWidth = labelled ? width - LABEL_WIDTH : width;
  const top = labelled ? TOP : 0;
  const plotHeight = height - top;
  const points = sparklinePoints(
    props.history,
    plotWidth,
    plotHeight,
    props.limit
  );
  if (!points) {
    return null;
  }
  const lines: { kind: ChartLine; bytes: number; y: number }[] = [];
  const add = (kind: ChartLine, bytes: number | null | undefined): void => {
    if (bytes) {
      lines.push({
        kind,
        bytes,
        y: top + chartY(bytes, plotHeight, props.limit)
      });
    }
  };
  add('warn', props.warn);
  add('halt', props.halt);
  if (labelled) {
    add('limit', props.limit);
  }
  const labelYs = spreadLabels(
    lines.map(l => l.y + 3),
    LABEL_GAP,
    8,
    height - 1
  );
  return (
    <svg
      className={`jp-memguard-chart ${labelled ? 'jp-memguard-chart-labelled' : ''} ${props.className ?? ''}`}
      viewBox={`0 0 ${width} ${height}`}
      width={labelled ? width : undefined}
      height={labelled ? height : undefined}
      preserveAspectRatio={labelled ? undefined : 'none'}
      role="img"
      aria-label={props.label}
    >
      <title>{props.label}</title>
      {lines.map((line, i) => (
        <g key={line.kind} className="jp-memguard-chart-mark">
          <line
            className={`jp-memguard-chart-${line.kind}`}
            x1={0}
            x2={plotWidth}
            y1={line.y}
            y2={line.y}
          />
          {props.lineLabel ? (
            <text
              className={`jp-memguard-chart-label jp-memguard-chart-label-${line.kind}`}
              x={plotWidth + 4}
              y={labelYs[i]}
            >
              {props.lineLabel(line.kind, line.bytes)}
            </text>
          ) : null}
        </g>
      ))}
      <polyline
        className="jp-memguard-chart-line"
        points={points}
        transform={top ? `translate(0,${top})` : undefined}
      />
    </svg>
  );
}

/** A stacked bar: who holds how much of a whole (the budget, a GPU). */
export function StackedBar(props: {
  bar: IBar;
  /** The hover text of a segment: its name, its size and a sentence about it. */
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
