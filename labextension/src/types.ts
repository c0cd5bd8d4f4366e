/**
 * Shapes of memguard's REST API and events (see the README's API section).
 */

export type Level = 'ok' | 'warning' | 'critical';

/** Display units: binary (KiB, MiB, GiB: powers of 1024) or decimal (kB, MB, GB). */
export type Units = 'binary' | 'decimal';

/** The user's units setting: "server" follows the server's `display_units`. */
export type UnitsSetting = 'server' | Units;

/** How a kernel's memory was measured: one process's RSS, PSS summed over its tree (shared
 * pages counted once), or what the kernel reported (`usage_request`). */
export type MemoryMethod = 'rss' | 'pss' | 'usage_request' | string;

export interface IKernelMemory {
  /** Pages counted once: the figure the guard decides on (absent on older servers). */
  used_bytes?: number;
  method?: MemoryMethod;
  /** The RSS summed over the tree (shared pages counted once per process: an upper bound). */
  rss_bytes: number;
  peak_bytes: number;
  growth_bytes_per_s: number;
  children: number[];
  pss_bytes: number | null;
  uss_bytes: number | null;
  sampled_at: number;
  source?: string;
}

export interface IGpuDevice {
  index: number;
  name: string;
  used_bytes: number;
  total_bytes: number;
  pids: number[];
}

/** GPU memory of a kernel's process tree (NVML), or null where it uses none / no NVML. */
export interface IKernelGpu {
  used_bytes: number;
  devices: IGpuDevice[];
}

export interface IKernelInfo {
  id: string;
  name: string;
  path: string | null;
  pid: number | null;
  execution_state: string;
  idle_seconds: number;
  connections: number;
  protected: boolean;
  memory: IKernelMemory | null;
  memory_unavailable_reason: string | null;
  limit_bytes: number;
  limit_source: string;
  warn_bytes: number;
  halt_bytes: number;
  level: Level;
  gpu: IKernelGpu | null;
  started_at?: number;
  history?: [number, number][];
}

export interface IBudget {
  limit_bytes: number;
  limit_source: string;
  usage_bytes: number;
  usage_source: string;
  host_total_bytes: number;
  headroom_bytes: number;
  usage_fraction: number;
}

export interface IStatusSettings {
  warn_fraction: number;
  halt_fraction: number;
  kill_fraction: number;
  dry_run: boolean;
  guard_enabled: boolean;
  interrupt_grace?: number;
  shutdown_grace?: number;
  action?: string;
  /** How the server wants sizes shown ("binary" | "decimal"); absent on older servers. */
  display_units?: string;
}

/** One holder of the budget: a kernel (key: its id), the server, a terminal (key: its name). */
export interface IHolder {
  kind: 'kernel' | 'server' | 'terminal' | string;
  key: string;
  bytes: number;
  pids: number[];
  method?: string;
}

/** A process outside the kernels and the server. */
export interface IOtherProcess {
  pid: number;
  name: string;
  cmdline: string;
  user: string;
  bytes: number;
  /** The terminal it runs in, if any. */
  terminal?: string | null;
}

/** Who holds the budget (from the last host scan). */
export interface IBreakdown {
  usage_bytes: number;
  scope: string;
  scanned_at: number;
  kernels: IHolder[];
  server: IHolder;
  terminals: IHolder[];
  others: IOtherProcess[];
  others_bytes: number;
  others_count: number;
  page_cache_bytes: number;
  shmem_bytes: number;
  unattributed_bytes: number;
  overcounted_bytes: number;
  largest_outside?: IOtherProcess[];
}

/** One GPU and the kernels of this server holding memory on it. */
export interface IGpuDeviceStatus {
  index: number;
  name: string;
  used_bytes: number;
  total_bytes: number;
  free_bytes: number;
  kernels: { kernel_id: string; path?: string | null; bytes: number }[];
}

export interface IStatus {
  version: string;
  budget: IBudget;
  kernels_rss_bytes: number;
  interval_seconds: number;
  can_halt: boolean;
  settings: IStatusSettings;
  /** null until the first host scan. */
  breakdown?: IBreakdown | null;
  /** Empty without NVML. */
  gpu_devices?: IGpuDeviceStatus[];
  last_tick_at?: number;
}

export type CellStatus =
  'running' | 'ok' | 'error' | 'interrupted' | 'kernel_died' | string;

/** One execution of a kernel (GET /api/memguard/kernels/{id}/cells, a termination's evidence). */
export interface ICellRecord {
  /** The execute_request's msg_id. */
  msg_id?: string | null;
  execution_count: number | null;
  /** The first lines of its code. */
  code: string;
  first_line: string;
  started_at: number;
  ended_at: number | null;
  status: CellStatus;
  ename?: string | null;
  memory_before_bytes: number | null;
  memory_after_bytes: number | null;
  peak_bytes: number | null;
  delta_bytes: number | null;
  duration_s: number | null;
  peak_method?: string | null;
  /** Queued right behind another cell: the boundary between them is not exact. */
  overlapped?: boolean;
}

/** A memory_pressure event: memory outside the kernels fills the budget. */
export interface IPressure {
  usage_bytes: number;
  limit_bytes: number;
  /** The server's plain words, naming the process that holds the memory. */
  message: string;
  culprit?: IOtherProcess | null;
}

/** A kernel holding memory on a GPU, in a gpu_pressure event. */
export interface IGpuHolder {
  kernel_id: string;
  path: string | null;
  bytes: number;
  idle: boolean;
  /** memguard already shut it down to make room (gpu_relief = cull). */
  culled: boolean;
}

/** A gpu_pressure event: a cell of kernel_id ran out of GPU memory while others hold it. */
export interface IGpuPressure {
  kernel_id: string;
  path: string | null;
  message: string;
  device: number;
  device_name: string;
  requested_bytes: number | null;
  free_bytes: number;
  holders: IGpuHolder[];
}

export interface IEvidence {
  exit_signal?: string | null;
  exit_code?: number | null;
  last_rss_bytes?: number | null;
  peak_rss_bytes?: number | null;
  limit_bytes?: number | null;
  limit_source?: string | null;
  oom_kill_before?: number | null;
  oom_kill_after?: number | null;
  kmsg_lines?: string[];
  intent_reason?: string | null;
  gpu_last_bytes?: number | null;
  gpu_peak_bytes?: number | null;
  /** The cell that was running when the kernel ended. */
  running_cell?: ICellRecord | null;
  /** The three cells that kept the most memory. */
  top_cells?: ICellRecord[];
  /** The last cells (at most 30), newest first. */
  recent_cells?: ICellRecord[];
  /** The kernel's last memory samples, [time, bytes]. */
  history?: [number, number][];
  [key: string]: unknown;
}

export interface ITermination {
  id?: number | null;
  kernel_id: string;
  kernel_name?: string | null;
  path: string | null;
  ended_at?: number;
  verdict: string;
  confidence: string;
  explanation: string;
  evidence: IEvidence;
  /** Short plain-language title from the server, e.g. "Kernel stopped: out of memory". */
  headline?: string | null;
  /** Plain sentences from the server: what happened, what it means, what to do. */
  summary?: string | null;
  /** One line of advice the evidence supports, from the server (or null). */
  advice?: string | null;
}

export interface ITerminationPage {
  terminations: ITermination[];
  total: number;
  limit: number;
  offset: number;
}

export const EVENT_PREFIX = 'https://events.jupyter.org/jupyter_memguard/';

export function eventKind(schemaId: string): string | null {
  if (!schemaId.startsWith(EVENT_PREFIX)) {
    return null;
  }
  return schemaId.slice(EVENT_PREFIX.length).split('/')[0] || null;
}
