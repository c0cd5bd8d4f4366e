/**
 * Shapes of memguard's REST API and events (see the README's API section).
 */

export type Level = 'ok' | 'warning' | 'critical';

/** Display units: binary (KiB, MiB, GiB: powers of 1024) or decimal (kB, MB, GB). */
export type Units = 'binary' | 'decimal';

/** The user's units setting: "server" follows the server's `display_units`. */
export type UnitsSetting = 'server' | Units;

export interface IKernelMemory {
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

export interface IStatus {
  version: string;
  budget: IBudget;
  kernels_rss_bytes: number;
  interval_seconds: number;
  can_halt: boolean;
  settings: IStatusSettings;
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
