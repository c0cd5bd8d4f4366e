/**
 * The arithmetic of the small charts (pure, jest-tested): points of a memory curve, the y of
 * a figure, and label positions that do not overlap.
 */

/** SVG polyline points for a history of [time, bytes], scaled to width × height against max. */
export function sparklinePoints(
  history: ReadonlyArray<readonly [number, number]>,
  width: number,
  height: number,
  max: number
): string {
  if (history.length < 2 || max <= 0) {
    return '';
  }
  const start = history[0][0];
  const span = history[history.length - 1][0] - start || 1;
  return history
    .map(([time, bytes]) => {
      const x = ((time - start) / span) * width;
      const y = height - (Math.min(bytes, max) / max) * height;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}

/** The y coordinate of a byte figure in a chart of `height` whose top is `max`. */
export function chartY(bytes: number, height: number, max: number): number {
  if (max <= 0) {
    return height;
  }
  return height - (Math.min(Math.max(bytes, 0), max) / max) * height;
}

/**
 * Label positions near the wanted ys (in the order given), at least `gap` apart and within
 * [low, high]: labels of lines close together (warn, stop, limit) are spread out.
 */
export function spreadLabels(
  wanted: ReadonlyArray<number>,
  gap: number,
  low: number,
  high: number
): number[] {
  const order = wanted.map((y, i) => ({ y, i })).sort((a, b) => a.y - b.y);
  const placed: number[] = new Array(wanted.length);
  let previous = -Infinity;
  for (const item of order) {
    const y = Math.max(item.y, low, previous + gap);
    placed[item.i] = y;
    previous = y;
  }
  // Pushed past the bottom: shift them back up, keeping the gaps.
  let next = Infinity;
  for (let k = order.length - 1; k >= 0; k--) {
    const i = order[k].i;
    placed[i] = Math.min(placed[i], high, next - gap);
    next = placed[i];
  }
  return placed;
}
