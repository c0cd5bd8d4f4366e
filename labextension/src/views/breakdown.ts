/**
 * Who holds the memory budget, as the segments of one stacked bar (pure, jest-tested): each
 * kernel, the Jupyter server, each terminal, the kernels a stopped server left running, other
 * programs, memory no process holds (file cache, shared memory, what nothing explains) and
 * the free space, against the limit. The server's parts add up to its usage.
 */
import {
  IBreakdown,
  IGpuDeviceStatus,
  IHolder,
  IOtherProcess
} from '../model/types';

export type SegmentKind =
  | 'kernel'
  | 'server'
  | 'terminal'
  | 'orphans'
  | 'others'
  | 'cache'
  | 'shmem'
  | 'unattributed'
  | 'free';

/** Kernels get one of this many colours, in turn. */
export const KERNEL_COLOURS = 6;

export interface ISegment {
  /** Unique in the bar: "kernel:<id>", "server", "terminal:<name>", "others", "free", … */
  readonly key: string;
  readonly kind: SegmentKind;
  /** The kernel's id, the terminal's name; null for the other kinds. */
  readonly id: string | null;
  /** What the holder holds (the real figure, shown in the legend). */
  readonly bytes: number;
  /** Its share of the bar, 0…1 (the whole bar is the limit). */
  readonly fraction: number;
  /** Kernels: the colour to draw it with (0…KERNEL_COLOURS-1). */
  readonly colour: number;
  /** Other programs: the largest few. */
  readonly processes?: ReadonlyArray<IOtherProcess>;
  /** Other programs, orphaned kernels: how many there are in all. */
  readonly count?: number;
  /** Orphaned kernels: each of them. */
  readonly holders?: ReadonlyArray<IHolder>;
}

export interface IBar {
  readonly segments: ISegment[];
  readonly limitBytes: number;
  readonly usageBytes: number;
}

/** Which colour a kernel is drawn with (stable across bars when the caller says so). */
export type KernelColour = (kernelId: string, index: number) => number;

const byIndex: KernelColour = (_, index) => index % KERNEL_COLOURS;

/** A segment of no one in particular (free space, a GPU's other users), in a bar of `total`. */
function plainSegment(
  kind: 'free' | 'others',
  bytes: number,
  total: number
): ISegment {
  return {
    key: kind,
    kind,
    id: null,
    bytes,
    fraction: bytes / total,
    colour: 0
  };
}

/** The segments of the budget bar, largest kernels first, free space last. */
export function breakdownBar(
  breakdown: IBreakdown,
  limitBytes: number,
  colour: KernelColour = byIndex
): IBar {
  const parts: Omit<ISegment, 'fraction'>[] = [];
  const kernels = [...breakdown.kernels].sort((a, b) => b.bytes - a.bytes);
  kernels.forEach((kernel, index) =>
    parts.push({
      key: `kernel:${kernel.key}`,
      kind: 'kernel',
      id: kernel.key,
      bytes: kernel.bytes,
      colour: colour(kernel.key, index)
    })
  );
  if (breakdown.server) {
    parts.push({
      key: 'server',
      kind: 'server',
      id: null,
      bytes: breakdown.server.bytes,
      colour: 0
    });
  }
  for (const terminal of breakdown.terminals) {
    parts.push({
      key: `terminal:${terminal.key}`,
      kind: 'terminal',
      id: terminal.key,
      bytes: terminal.bytes,
      colour: 0
    });
  }
  if (breakdown.orphans.length) {
    parts.push({
      key: 'orphans',
      kind: 'orphans',
      id: null,
      bytes: breakdown.orphans.reduce(
        (sum, h) => sum + Math.max(0, h.bytes),
        0
      ),
      colour: 0,
      count: breakdown.orphans.length,
      holders: [...breakdown.orphans].sort((a, b) => b.bytes - a.bytes)
    });
  }
  parts.push({
    key: 'others',
    kind: 'others',
    id: null,
    bytes: breakdown.others_bytes,
    colour: 0,
    processes: [...breakdown.others].sort((a, b) => b.bytes - a.bytes),
    count: breakdown.others_count
  });
  const unowned: [SegmentKind, number][] = [
    ['cache', breakdown.page_cache_bytes],
    ['shmem', breakdown.shmem_bytes],
    ['unattributed', breakdown.unattributed_bytes]
  ];
  for (const [kind, bytes] of unowned) {
    parts.push({ key: kind, kind, id: null, bytes, colour: 0 });
  }
  const usage = Math.max(0, breakdown.usage_bytes);
  const counted = parts.reduce((total, p) => total + Math.max(0, p.bytes), 0);
  // What the parts do not explain is the system's (the server counts it the same way).
  const gap = usage - counted;
  if (gap > 0) {
    const rest = parts.find(p => p.kind === 'unattributed');
    if (rest) {
      parts[parts.indexOf(rest)] = { ...rest, bytes: rest.bytes + gap };
    }
  }
  const shown = parts.filter(p => p.bytes > 0);
  const sum = shown.reduce((total, p) => total + p.bytes, 0);
  if (limitBytes <= 0) {
    return { segments: [], limitBytes, usageBytes: usage };
  }
  // The parts fill the usage (they add up to it, within the server's 2 %), within the bar.
  const used = Math.min(limitBytes, usage);
  const scale = sum > 0 ? used / sum : 0;
  const segments: ISegment[] = shown.map(p => ({
    ...p,
    fraction: (p.bytes * scale) / limitBytes
  }));
  const free = limitBytes - used;
  if (free > 0) {
    segments.push(plainSegment('free', free, limitBytes));
  }
  return { segments, limitBytes, usageBytes: usage };
}

/** One GPU as a bar: each kernel of this server, other users of the device, free memory. */
export function gpuBar(
  device: IGpuDeviceStatus,
  colour: KernelColour = byIndex
): IBar {
  const total = Math.max(0, device.total_bytes);
  const kernels = [...device.kernels].sort((a, b) => b.bytes - a.bytes);
  const held = kernels.reduce((sum, k) => sum + Math.max(0, k.bytes), 0);
  const segments: ISegment[] = [];
  if (total <= 0) {
    return { segments, limitBytes: total, usageBytes: 0 };
  }
  const used = Math.min(total, Math.max(device.used_bytes, held));
  const scale = held > used ? used / held : 1;
  kernels.forEach((kernel, index) => {
    if (kernel.bytes > 0) {
      segments.push({
        key: `kernel:${kernel.kernel_id}`,
        kind: 'kernel',
        id: kernel.kernel_id,
        bytes: kernel.bytes,
        fraction: (kernel.bytes * scale) / total,
        colour: colour(kernel.kernel_id, index)
      });
    }
  });
  const others = used - held * scale;
  if (others > 0) {
    segments.push(plainSegment('others', others, total));
  }
  const free = total - used;
  if (free > 0) {
    segments.push(plainSegment('free', free, total));
  }
  return { segments, limitBytes: total, usageBytes: used };
}

/** A kernel's colour from its id alone, so it is the same in every bar and row. */
export function kernelColour(kernelId: string): number {
  let hash = 0;
  for (let i = 0; i < kernelId.length; i++) {
    hash = (hash * 31 + kernelId.charCodeAt(i)) >>> 0;
  }
  return hash % KERNEL_COLOURS;
}
