/**
 * The texts of the Memory panel: the server's memory and who holds it, the GPUs, the
 * question before a stop, and what holds a kernel's memory (its largest variables).
 */
import { formatBytes, formatPercent } from '../format';
import {
  IBudget,
  IGpuDeviceStatus,
  IKernel,
  IOtherProcess,
  IStatusSettings,
  IVariable,
  IVariablesPage
} from '../model/types';
import { SegmentKind } from '../views/breakdown';
import { ITextContext, ITrans } from './common';
import { usageText } from './status';

/** "This server's memory: 1.5 GiB used of 24 GiB (the whole machine, all programs counted)". */
export function budgetText(budget: IBudget, ctx: ITextContext): string {
  const { trans, units } = ctx;
  const used = formatBytes(budget.usage_bytes, units);
  const limit = formatBytes(budget.limit_bytes, units);
  switch (budget.limit_source) {
    case 'host':
      return trans.__(
        "This server's memory: %1 used of %2 (the whole machine, all programs counted)",
        used,
        limit
      );
    case 'cgroup_v1':
    case 'cgroup_v2':
      return trans.__(
        "This server's memory: %1 used of %2 (its container's limit: the server, its kernels and terminals)",
        used,
        limit
      );
    case 'spawner_mem_limit':
      return trans.__(
        "This server's memory: %1 used of %2 (JupyterHub's limit: this server and its kernels)",
        used,
        limit
      );
    case 'config':
      return trans.__(
        "This server's memory: %1 used of %2 (memguard's memory_limit: this server and its kernels)",
        used,
        limit
      );
    default:
      return trans.__("This server's memory: %1 used of %2", used, limit);
  }
}

/** What the warn and stop lines of every kernel mean (null when the server does not say). */
export function fractionsText(
  settings: IStatusSettings | null | undefined,
  trans: ITrans
): string | null {
  if (!settings || settings.warn_fraction === null) {
    return null;
  }
  const warn = formatPercent(settings.warn_fraction);
  const halt =
    settings.halt_fraction === null
      ? null
      : formatPercent(settings.halt_fraction);
  if (!settings.guard_enabled || halt === null) {
    return trans.__(
      'memguard warns when a kernel reaches %1 of its limit; it does not stop kernels on this server.',
      warn
    );
  }
  if (settings.dry_run) {
    return trans.__(
      'memguard warns when a kernel reaches %1 of its limit and would stop it at %2 (dry run: it only reports).',
      warn,
      halt
    );
  }
  return trans.__(
    'memguard warns when a kernel reaches %1 of its limit and stops it at %2, before the system runs out of memory.',
    warn,
    halt
  );
}

/** The legend's name of a segment of a bar (`kernelName` names kernels). */
export function segmentLabel(
  segment: { kind: SegmentKind; id: string | null },
  trans: ITrans,
  kernelName: (kernelId: string) => string
): string {
  switch (segment.kind) {
    case 'kernel':
      return kernelName(segment.id ?? '');
    case 'server':
      return trans.__('Jupyter server');
    case 'terminal':
      return trans.__('Terminal %1', segment.id ?? '');
    case 'orphans':
      return trans.__('Kernels left by a server that stopped');
    case 'others':
      return trans.__('Other programs');
    case 'cache':
      return trans.__('File cache');
    case 'shmem':
      return trans.__('Shared memory');
    case 'unattributed':
      return trans.__('Other system memory');
    case 'free':
    default:
      return trans.__('Free');
  }
}

/** What a segment of the budget bar is, in one sentence. */
export function segmentHint(kind: SegmentKind, trans: ITrans): string {
  switch (kind) {
    case 'kernel':
      return trans.__(
        'A notebook’s kernel, with the processes it started, each page counted once.'
      );
    case 'server':
      return trans.__('The Jupyter server itself, with its extensions.');
    case 'terminal':
      return trans.__(
        'A terminal of this server and the programs running in it.'
      );
    case 'orphans':
      return trans.__(
        'Kernels a Jupyter server left running when it stopped abruptly; no notebook can reach them.'
      );
    case 'others':
      return trans.__(
        'Programs outside Jupyter that count against this limit.'
      );
    case 'cache':
      return trans.__(
        'Files read or written recently, kept in memory by the system; it counts against the limit.'
      );
    case 'shmem':
      return trans.__(
        'Shared memory and files kept in memory (/dev/shm, tmpfs).'
      );
    case 'unattributed':
      return trans.__(
        'Memory the system uses for this limit that no process accounts for.'
      );
    case 'free':
    default:
      return trans.__('What is left before the limit.');
  }
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** "`python train.py` — pid 4242, alice, terminal 1: 1.6 GiB". */
export function otherProcessText(
  p: IOtherProcess,
  ctx: ITextContext,
  maxCommand = 80
): string {
  const { trans, units } = ctx;
  const command = shorten((p.cmdline || p.name || '?').trim(), maxCommand);
  const where = p.terminal
    ? trans.__('pid %1, %2, terminal %3', p.pid, p.user, p.terminal)
    : trans.__('pid %1, %2', p.pid, p.user);
  return trans.__('`%1` — %2: %3', command, where, formatBytes(p.bytes, units));
}

/** A kernel a stopped server left: "old.ipynb — pid 4242: 1.2 GiB". */
export function orphanText(
  orphan: { name: string; pids: number[]; bytes: number },
  ctx: ITextContext
): string {
  const { trans, units } = ctx;
  return orphan.pids.length
    ? trans.__(
        '%1 — pid %2: %3',
        orphan.name,
        orphan.pids.join(', '),
        formatBytes(orphan.bytes, units)
      )
    : trans.__('%1: %2', orphan.name, formatBytes(orphan.bytes, units));
}

/** "GPU 0 (NVIDIA A100): 30 GiB of 40 GiB (75 %) used". */
export function gpuDeviceText(
  device: IGpuDeviceStatus,
  ctx: ITextContext
): string {
  return ctx.trans.__(
    'GPU %1 (%2): %3 used',
    device.index,
    device.name,
    usageText(device.used_bytes, device.total_bytes, ctx)
  );
}

/** The question before a stop from the Memory panel. */
export function haltConfirmation(
  kernel: Pick<IKernel, 'path' | 'name' | 'id' | 'memory'>,
  ctx: ITextContext
): { title: string; body: string; button: string } {
  const { trans, units } = ctx;
  const what = kernel.path
    ? trans.__('The kernel of %1', kernel.path)
    : trans.__('The kernel %1 (%2)', kernel.name, kernel.id.slice(0, 8));
  const size = kernel.memory
    ? trans.__(', which uses %1,', formatBytes(kernel.memory.used_bytes, units))
    : '';
  return {
    title: trans.__('Stop this kernel?'),
    body: trans.__(
      '%1%2 will be shut down now. All its variables, and the result of any cell still running, are lost; the notebook itself is kept. Restart the kernel to go on.',
      what,
      size
    ),
    button: trans.__('Stop the kernel')
  };
}

/** A variable's size: "1.2 GiB", "≈ 1.2 GiB" (an estimate), "≥ 1.2 GiB" (at least). */
export function variableSize(v: IVariable, ctx: ITextContext): string {
  const size = formatBytes(v.bytes, ctx.units);
  switch (v.qualifier) {
    case 'estimate':
      return `≈ ${size}`;
    case 'at_least':
      return `≥ ${size}`;
    default:
      return size;
  }
}

/** One variable's kind: "DataFrame", "Tensor on cuda:0". */
export function variableKind(v: IVariable, trans: ITrans): string {
  return v.device ? trans.__('%1 on %2', v.type, v.device) : v.type;
}

/** Why the variables cannot be shown, or what they add up to. */
export function variablesState(
  page: IVariablesPage | null,
  failed: string | null,
  ctx: ITextContext
): string | null {
  const { trans, units } = ctx;
  if (failed) {
    return trans.__('Could not ask the kernel: %1', failed);
  }
  if (!page) {
    return trans.__('Asking the kernel…');
  }
  switch (page.status) {
    case 'busy':
      return trans.__(
        'The kernel is busy in native code (it holds the interpreter), so it cannot answer now. Try again when the cell finishes.'
      );
    case 'unavailable':
      return page.reason
        ? trans.__('Unavailable: %1', page.reason)
        : trans.__('Unavailable for this kernel.');
    default:
      if (!page.variables.length) {
        return trans.__('No large variables.');
      }
      return page.total_bytes !== null
        ? trans.__(
            'The largest names of the kernel hold %1 together.',
            formatBytes(page.total_bytes, units)
          )
        : null;
  }
}
