/**
 * The texts of cells: a cell's badge (what the cell did: its change, and its own peak above
 * where it started), its figures in the timeline, and the note memguard adds to the output of
 * a cell it stopped (the server's words, after a short prefix that marks the note).
 */
import { formatBytes, formatSeconds, formatSignedBytes } from '../format';
import { IIncident } from '../model/incidents';
import { ICellRecord } from '../model/types';
import { ITextContext, ITrans } from './common';

/** The label of a cell: "[7]", or "[ ]" when it has no execution count. */
export function cellLabel(cell: Pick<ICellRecord, 'execution_count'>): string {
  return cell.execution_count === null ? '[ ]' : `[${cell.execution_count}]`;
}

/** How a cell ended, in words. */
export function cellStatusText(cell: ICellRecord, trans: ITrans): string {
  switch (cell.status) {
    case 'running':
      return trans.__('Still running');
    case 'ok':
      return trans.__('Finished');
    case 'error':
      return cell.ename
        ? trans.__('Failed with %1', cell.ename)
        : trans.__('Failed with an error');
    case 'interrupted':
      return trans.__('Interrupted');
    case 'halted':
      return trans.__('Stopped by memguard');
    case 'kernel_died':
      return trans.__('The kernel ended while it ran');
    default:
      return trans.__('Unknown');
  }
}

/** The first line of a cell's code, or "cell [7]" where the server keeps no code. */
export function cellCode(cell: ICellRecord, trans: ITrans): string {
  return cell.first_line || trans.__('cell %1', cellLabel(cell));
}

/** A badge: "+3.6 GiB · peak +4.1 GiB" (≈ for a cell run right behind another). */
export function badgeText(cell: ICellRecord, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const approx = cell.overlapped ? '≈' : '';
  const delta = cell.delta_bytes;
  const peak = cell.peak_above_start_bytes;
  if (delta === null && peak === null) {
    return '';
  }
  if (delta === null) {
    return trans.__('%1peak %2', approx, formatSignedBytes(peak, units));
  }
  if (peak === null) {
    return `${approx}${formatSignedBytes(delta, units)}`;
  }
  return trans.__(
    '%1%2 · peak %3',
    approx,
    formatSignedBytes(delta, units),
    formatSignedBytes(peak, units)
  );
}

/** The hover text of a badge: the figures in sentences, and what a click does. */
export function badgeTitle(cell: ICellRecord, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const parts = [
    trans.__(
      'Cell %1 changed its kernel’s memory by %2 (%3 → %4).',
      cellLabel(cell),
      formatSignedBytes(cell.delta_bytes, units),
      formatBytes(cell.memory_before_bytes, units),
      formatBytes(cell.memory_after_bytes, units)
    )
  ];
  if (cell.peak_above_start_bytes !== null) {
    parts.push(
      trans.__(
        'At its peak it used %1 more than when it started.',
        formatBytes(cell.peak_above_start_bytes, units)
      )
    );
  }
  parts.push(trans.__('It took %1.', formatSeconds(cell.duration_s)));
  if (cell.overlapped) {
    parts.push(
      trans.__(
        'It ran right behind another cell, so part of that cell’s memory may be counted here.'
      )
    );
  }
  parts.push(trans.__('Click for the memory timeline.'));
  return parts.join(' ');
}

/** A cell's figures for the timeline: [label, value] pairs. */
export function cellFigures(
  cell: ICellRecord,
  ctx: ITextContext
): [string, string][] {
  const { trans, units } = ctx;
  const running = cell.status === 'running';
  const lines: [string, string][] = [
    [trans.__('Before'), formatBytes(cell.memory_before_bytes, units)],
    [
      trans.__('Change'),
      running
        ? trans.__('still running')
        : formatSignedBytes(cell.delta_bytes, units)
    ],
    [
      trans.__('Peak above its start'),
      formatSignedBytes(cell.peak_above_start_bytes, units)
    ],
    [
      trans.__('Took'),
      running ? trans.__('still running') : formatSeconds(cell.duration_s)
    ],
    [trans.__('Status'), cellStatusText(cell, trans)]
  ];
  if (cell.overlapped) {
    lines.push([
      trans.__('Note'),
      trans.__(
        'It ran right behind another cell: the figures may include part of that cell.'
      )
    ]);
  }
  return lines;
}

/** The openings of memguard's notes in a cell's output (so a note is not added twice). */
export function cellNotePrefixes(trans: ITrans): string[] {
  return [
    trans.__('memguard stopped this cell:'),
    trans.__('memguard interrupted this cell:')
  ];
}

/**
 * The note added to the output of the cell that was running when memguard stopped its
 * kernel: a prefix, then the server's summary and advice for the record (or the halt).
 * `kernelEnded`: the kernel is gone (else the interrupt was enough and it runs on).
 */
export function cellNote(
  incident: IIncident,
  kernelEnded: boolean,
  trans: ITrans
): string {
  const [stopped, interrupted] = cellNotePrefixes(trans);
  const w = incident.words;
  return [
    kernelEnded ? stopped : interrupted,
    w?.summary ?? '',
    w?.advice ?? ''
  ]
    .filter(Boolean)
    .join(' ');
}
