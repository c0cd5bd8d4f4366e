/**
 * Pure formatting helpers (no JupyterLab imports, so jest can test them directly).
 */
import { IKernelGpu, Level, Units } from './types';

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** The unit index and divisor used for a byte count. */
function scale(bytes: number, units: Units): [number, number] {
  const base = units === 'binary' ? 1024 : 1000;
  let index = 0;
  let divisor = 1;
  while (index < 4 && Math.abs(bytes) >= divisor * base) {
    divisor *= base;
    index += 1;
  }
  return [index, divisor];
}

/** "1.2 GB" (decimal) or "1.1 GiB" (binary). */
export function formatBytes(
  bytes: number | null | undefined,
  units: Units = 'decimal'
): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return 'n/a';
  }
  const [index, divisor] = scale(bytes, units);
  const names = units === 'binary' ? BINARY : DECIMAL;
  const value = bytes / divisor;
  return index === 0
    ? `${Math.round(value)} ${names[0]}`
    : `${value.toFixed(1)} ${names[index]}`;
}

/** "1.2 / 4.0 GB": both figures in the unit of the limit. */
export function formatUsage(
  used: number,
  limit: number,
  units: Units = 'decimal'
): string {
  const [index, divisor] = scale(limit, units);
  const names = units === 'binary' ? BINARY : DECIMAL;
  const digits = index === 0 ? 0 : 1;
  return `${(used / divisor).toFixed(digits)} / ${(limit / divisor).toFixed(digits)} ${names[index]}`;
}

/** "42 s", "5 min", "3 h 10 min". */
/**
 * A kernel's GPU memory: a short figure for the status bar and one line per device.
 * Null when the kernel uses no GPU (or memguard cannot see one).
 */
export function formatGpu(
  gpu: IKernelGpu | null | undefined,
  units: Units = 'decimal'
): { short: string; lines: string[] } | null {
  if (!gpu || !gpu.devices.length) {
    return null;
  }
  return {
    short: `GPU ${formatBytes(gpu.used_bytes, units)}`,
    lines: gpu.devices.map(
      d =>
        `GPU ${d.index} (${d.name}): ${formatUsage(d.used_bytes, d.total_bytes, units)}`
    )
  };
}

export function formatDuration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) {
    return 'n/a';
  }
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.round(seconds / 60)} min`;
  }
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.round((seconds % 3600) / 60);
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

/** The display level of a memory figure against its limit. */
export function levelOf(
  used: number,
  limit: number,
  warnFraction: number,
  haltFraction: number
): Level {
  if (limit <= 0) {
    return 'ok';
  }
  if (used >= haltFraction * limit) {
    return 'critical';
  }
  if (used >= warnFraction * limit) {
    return 'warning';
  }
  return 'ok';
}

/** SVG polyline points for a history of [time, bytes], scaled to width × height against max. */
export function sparklinePoints(
  history: [number, number][],
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

/**
 * Delay before the next poll: the refresh interval while visible, slower (×6, at most a
 * minute) while the page is hidden, and doubling after failures (at most a minute).
 */
export function nextDelay(
  refreshSeconds: number,
  hidden: boolean,
  failures: number
): number {
  const base = Math.max(0.5, refreshSeconds) * 1000;
  let delay = hidden ? Math.min(60000, base * 6) : base;
  if (failures > 0) {
    delay = Math.min(60000, delay * 2 ** Math.min(failures, 6));
  }
  return delay;
}
