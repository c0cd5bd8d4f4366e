/**
 * Pure formatting helpers (no JupyterLab imports, so jest can test them directly).
 */
import { IKernelGpu, IKernelMemory, Level, Units, UnitsSetting } from './types';

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes per second below which growth is noise (allocator jitter, caches). */
export const GROWTH_FLOOR = 1024 ** 2;

/** Seconds of history a growth rate is computed over. */
export const GROWTH_WINDOW = 10;

/**
 * The units to display: the user's setting, or the server's `display_units` when the
 * setting is "server" (binary when the server says nothing: config sizes like 600M are binary).
 */
export function resolveUnits(
  setting: UnitsSetting | string | null | undefined,
  serverUnits: string | null | undefined
): Units {
  if (setting === 'binary' || setting === 'decimal') {
    return setting;
  }
  return serverUnits === 'decimal' ? 'decimal' : 'binary';
}

/** The unit index and the value in that unit (rounding up into the next unit if needed). */
function scale(bytes: number, units: Units): { index: number; value: number } {
  const base = units === 'binary' ? 1024 : 1000;
  const names = units === 'binary' ? BINARY : DECIMAL;
  let index = 0;
  let value = Math.abs(bytes);
  while (index < names.length - 1 && value >= base) {
    value /= base;
    index += 1;
  }
  // 1023.7 MiB would read "1024 MiB": show it as 1 GiB instead.
  if (index > 0 && index < names.length - 1 && Math.round(value) >= base) {
    value /= base;
    index += 1;
  }
  return { index, value: bytes < 0 ? -value : value };
}

/** A number with enough precision: 1 decimal below 10 (none when whole), none from 10 up. */
function figure(value: number): string {
  if (Math.abs(value) >= 10) {
    return String(Math.round(value));
  }
  if (Math.abs(value - Math.round(value)) < 0.005) {
    return String(Math.round(value));
  }
  return value.toFixed(1);
}

/** "54 MiB", "1.5 GiB", "600 MiB" (binary) or "57 MB", "1.6 GB" (decimal). */
export function formatBytes(
  bytes: number | null | undefined,
  units: Units = 'binary'
): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return 'n/a';
  }
  const names = units === 'binary' ? BINARY : DECIMAL;
  const { index, value } = scale(bytes, units);
  return index === 0
    ? `${Math.round(value)} ${names[0]}`
    : `${figure(value)} ${names[index]}`;
}

/**
 * A kernel's memory as the guard counts it: pages counted once (`used_bytes`), else (an
 * older server) the RSS sum.
 */
export function usedBytes(memory: IKernelMemory | null | undefined): number {
  if (!memory) {
    return 0;
  }
  return typeof memory.used_bytes === 'number'
    ? memory.used_bytes
    : memory.rss_bytes;
}

/** "+150 MiB", "−1.2 GiB", "±0 B" (a minus sign, not a hyphen). */
export function formatSignedBytes(
  bytes: number | null | undefined,
  units: Units = 'binary'
): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return 'n/a';
  }
  if (bytes === 0) {
    return '±0 B';
  }
  const text = formatBytes(Math.abs(bytes), units);
  return bytes > 0 ? `+${text}` : `\u2212${text}`;
}

/** "54 / 600 MiB" when both figures share a unit, else "540 MiB / 1.5 GiB". */
export function formatUsage(
  used: number,
  limit: number,
  units: Units = 'binary'
): string {
  const a = formatBytes(used, units);
  const b = formatBytes(limit, units);
  const [valueA, unitA] = a.split(' ');
  const [valueB, unitB] = b.split(' ');
  return unitA === unitB ? `${valueA} / ${valueB} ${unitB}` : `${a} / ${b}`;
}

/** "80 %" for 0.8. */
export function formatPercent(fraction: number): string {
  if (!isFinite(fraction)) {
    return 'n/a';
  }
  return `${Math.round(fraction * 100)} %`;
}

/** "12 MiB/s". */
export function formatRate(
  bytesPerSecond: number,
  units: Units = 'binary'
): string {
  return `${formatBytes(bytesPerSecond, units)}/s`;
}

/**
 * A kernel's GPU memory: a short figure for the status bar and one line per device.
 * Null when the kernel uses no GPU (or memguard cannot see one).
 */
export function formatGpu(
  gpu: IKernelGpu | null | undefined,
  units: Units = 'binary'
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

/** "42 s", "5 min", "3 h 10 min". */
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

/** A cell's duration: "0.09 s", "1.5 s", "42 s", "5 min". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return 'n/a';
  }
  if (seconds < 0.01) {
    return '< 0.01 s';
  }
  if (seconds < 1) {
    return `${seconds.toFixed(2)} s`;
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  return formatDuration(seconds);
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

/**
 * The growth rate worth showing (bytes/s), or null: computed over the last GROWTH_WINDOW
 * seconds of history, only when the newest sample is recent (`now`, seconds) and the kernel
 * grew faster than `floor`. An idle kernel shows no growth, however fast it grew before.
 */
export function meaningfulGrowth(
  history: ReadonlyArray<[number, number]>,
  now: number,
  floor: number = GROWTH_FLOOR
): number | null {
  if (history.length < 2) {
    return null;
  }
  const [lastTime, lastBytes] = history[history.length - 1];
  if (now - lastTime > GROWTH_WINDOW) {
    return null;
  }
  let first = history.length - 1;
  while (first > 0 && lastTime - history[first - 1][0] <= GROWTH_WINDOW) {
    first -= 1;
  }
  const [firstTime, firstBytes] = history[first];
  const span = lastTime - firstTime;
  if (span < 1) {
    return null;
  }
  const rate = (lastBytes - firstBytes) / span;
  return rate >= floor ? rate : null;
}

/** SVG polyline points for a history of [time, bytes], scaled to width × height against max. */
export function sparklinePoints(
  history: ReadonlyArray<[number, number]>,
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
 * Milliseconds between polls: the refresh interval while the page is visible, six times
 * slower (at most a minute) while it is hidden. Never faster than twice a second.
 */
export function pollInterval(refreshSeconds: number, hidden: boolean): number {
  const base = Math.max(0.5, refreshSeconds) * 1000;
  return hidden ? Math.min(60000, base * 6) : base;
}

/** The last part of a path ("work/big.ipynb" → "big.ipynb"). */
export function basename(path: string | null | undefined): string | null {
  return path ? (path.split('/').pop() ?? path) : null;
}
