/**
 * Shapes of memguard's REST API and events (see the README's API section).
 */

export type Level = 'ok' | 'warning' | 'critical';
export type Units = 'decimal' | 'binary';

export interface IKernelMemory {
  rss_bytes: number;
  peak_bytes: number;
  growth_bytes_per_s: number;
  children: number[];
  pss_bytes: number | null;
  uss_bytes: number | null;
  sampled_at: number;
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

export interface IStatus {
  version: string;
  budget: IBudget;
  kernels_rss_bytes: number;
  interval_seconds: number;
  can_halt: boolean;
  settings: {
    warn_fraction: number;
    halt_fraction: number;
    kill_fraction: number;
    dry_run: boolean;
    guard_enabled: boolean;
  };
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
