/**
 * Units: sizes, rates, percentages and durations as text (pure; no JupyterLab imports).
 */
import { Units, UnitsSetting } from './model/types';

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

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

const FIGURE = /(\d) (%|B|KiB|MiB|GiB|TiB|PiB|kB|MB|GB|TB|PB|s|min)(?![\w])/g;

/**
 * A sentence whose figures keep their units on the same line ("480\u00a0MiB", "80\u00a0%"):
 * the space between a number and its unit becomes a no-break space, so a narrow tooltip
 * or panel never shows "(480" on one line and "MiB)" on the next. For display only.
 */
export function keepFigures(text: string): string {
  return text.replace(FIGURE, '$1\u00a0$2');
}

/**
 * A paragraph broken into lines of at most `width` characters at spaces (a word longer than
 * that stays whole on a line of its own): for text shown in a monospace output area, which
 * would otherwise break it mid-word at its edge.
 */
export function wrapLines(text: string, width: number): string {
  return text
    .split('\n')
    .map(paragraph => {
      const lines: string[] = [];
      let line = '';
      for (const word of paragraph.split(' ')) {
        if (line && line.length + 1 + word.length > width) {
          lines.push(line);
          line = word;
        } else {
          line = line ? `${line} ${word}` : word;
        }
      }
      lines.push(line);
      return lines.join('\n');
    })
    .join('\n');
}
