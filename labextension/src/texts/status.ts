/**
 * The texts of a kernel's memory against its limit: the status-bar item and its tooltip, and
 * the kernel rows of the Memory panel. The lines (warn, stop) are the server's figures.
 */
import {
  formatBytes,
  formatPercent,
  formatRate,
  formatUsage,
  formatDuration
} from '../format';
import { IKernel, IKernelGpu, IStatusSettings, Units } from '../model/types';
import { ITextContext, ITrans } from './common';

/** The text of the status-bar item for a measured kernel: "Mem 54 / 600 MiB". */
export function statusText(used: number, limit: number, units: Units): string {
  return `Mem ${formatUsage(used, limit, units)}`;
}

/** "54 MiB of 600 MiB (9 %)". */
export function usageText(
  used: number,
  limit: number,
  ctx: ITextContext
): string {
  return ctx.trans.__(
    '%1 of %2 (%3)',
    formatBytes(used, ctx.units),
    formatBytes(limit, ctx.units),
    formatPercent(limit ? used / limit : NaN)
  );
}

/** "memguard warns at 80 % (480 MiB) and stops the kernel at 90 % (540 MiB)." */
export function linesText(
  kernel: Pick<IKernel, 'warn_bytes' | 'halt_bytes' | 'limit_bytes'>,
  settings: IStatusSettings | null | undefined,
  ctx: ITextContext
): string {
  const { trans, units } = ctx;
  const limit = kernel.limit_bytes;
  const warnPct = formatPercent(limit ? kernel.warn_bytes / limit : NaN);
  const haltPct = formatPercent(limit ? kernel.halt_bytes / limit : NaN);
  const warn = formatBytes(kernel.warn_bytes, units);
  const halt = formatBytes(kernel.halt_bytes, units);
  if (settings && !settings.guard_enabled) {
    return trans.__(
      'memguard warns at %1 (%2); it does not stop kernels on this server (its guard is off).',
      warnPct,
      warn
    );
  }
  if (settings?.dry_run) {
    return trans.__(
      'memguard warns at %1 (%2) and would stop the kernel at %3 (%4), but here it only reports it (dry run).',
      warnPct,
      warn,
      haltPct,
      halt
    );
  }
  return trans.__(
    'memguard warns at %1 (%2) and stops the kernel at %3 (%4).',
    warnPct,
    warn,
    haltPct,
    halt
  );
}

/** Where a limit comes from, in words. */
export function limitSourceText(source: string, trans: ITrans): string {
  switch (source) {
    case 'kernel_memory_limit':
      return trans.__("memguard's limit for each kernel (kernel_memory_limit)");
    case 'config':
      return trans.__("memguard's memory limit for this server (memory_limit)");
    case 'cgroup_v1':
    case 'cgroup_v2':
      return trans.__("the container's memory limit");
    case 'spawner_mem_limit':
      return trans.__("JupyterHub's memory limit for this server");
    case 'host':
      return trans.__("the machine's total memory");
    default:
      return source.replace(/_/g, ' ');
  }
}

/** "Running code", "Idle for 12 s", "Starting". */
export function kernelStateText(
  kernel: Pick<IKernel, 'execution_state' | 'idle_seconds'>,
  trans: ITrans
): string {
  switch (kernel.execution_state) {
    case 'busy':
      return trans.__('Running code');
    case 'idle':
      return kernel.idle_seconds >= 1
        ? trans.__('Idle for %1', formatDuration(kernel.idle_seconds))
        : trans.__('Idle');
    case 'starting':
      return trans.__('Starting');
    case 'restarting':
    case 'autorestarting':
      return trans.__('Restarting');
    case 'dead':
      return trans.__('Stopped');
    default:
      return trans.__('State: %1', kernel.execution_state);
  }
}

/**
 * The facts under a kernel's figures: its peak, its growth rate only when the server says it
 * is growing (busy, and grown for a few seconds), and whether memguard is stopping it.
 */
export function kernelFacts(kernel: IKernel, ctx: ITextContext): string[] {
  const { trans, units } = ctx;
  const m = kernel.memory;
  const facts: string[] = [];
  if (m?.peak_bytes) {
    facts.push(trans.__('peak %1', formatBytes(m.peak_bytes, units)));
  }
  if (kernel.growing && m?.growth_bytes_per_s) {
    facts.push(trans.__('growing %1', formatRate(m.growth_bytes_per_s, units)));
  }
  if (kernel.halted) {
    facts.push(trans.__('memguard is stopping it'));
  }
  return facts;
}

/** A kernel's GPU memory: a short figure for the status bar and one line per device. */
export function gpuText(
  gpu: IKernelGpu | null,
  ctx: ITextContext
): { short: string; lines: string[] } | null {
  if (!gpu || !gpu.devices.length) {
    return null;
  }
  const { trans, units } = ctx;
  return {
    short: trans.__('GPU %1', formatBytes(gpu.used_bytes, units)),
    lines: gpu.devices.map(d =>
      trans.__(
        'GPU %1 (%2): %3',
        d.index,
        d.name,
        formatUsage(d.used_bytes, d.total_bytes, units)
      )
    )
  };
}

/** The label of a line of a memory chart: "warn 480 MiB", "stop 540 MiB", "limit 600 MiB". */
export function chartLineLabel(
  kind: 'warn' | 'halt' | 'limit',
  bytes: number,
  ctx: ITextContext
): string {
  const size = formatBytes(bytes, ctx.units);
  switch (kind) {
    case 'warn':
      return ctx.trans.__('warn %1', size);
    case 'halt':
      return ctx.trans.__('stop %1', size);
    case 'limit':
    default:
      return ctx.trans.__('limit %1', size);
  }
}
