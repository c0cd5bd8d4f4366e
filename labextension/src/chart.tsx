/**
 * A small memory chart: the recent samples against the limit, with the warn and stop lines.
 */
import * as React from 'react';

import { chartY, sparklinePoints } from './format';

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
