/**
 * The shapes of memguard's REST answers and events, as the server ↔ UI contract gives them.
 * Figures are bytes and epoch seconds (the server's clock). The decoders in payloads.ts and
 * events.ts produce exactly these.
 */

export type Level = 'ok' | 'warning' | 'critical';

/** Display units: binary (KiB, MiB, GiB: powers of 1024) or decimal (kB, MB, GB). */
export type Units = 'binary' | 'decimal';

/** The user's units setting: "server" follows the server's `display_units`. */
export type UnitsSetting = 'server' | Units;

export type Severity = 'info' | 'warning' | 'error';

/** The server's words for one event or record: shown as they are, never re-worded here. */
export interface IWords {
  /** What happened, a few words. */
  headline: string;
  /** What happened, what it means, what to do. */
  summary: string;
  /** One line the evidence supports, or null. */
  advice: string | null;
  severity: Severity;
}

/** memguard's own reason when it acted (structured: the UI never parses reason text). */
export interface ITrigger {
  /** kernel_limit | budget | idle | idle_pressure | admin | outside | gpu_pressure | jupyter_server_culler | … */
  kind: string;
  line: 'warn' | 'halt' | 'kill' | null;
  usage_bytes: number | null;
  limit_bytes: number | null;
  line_bytes: number | null;
  idle_seconds: number | null;
  timeout_seconds: number | null;
  by: string | null;
  device_index: number | null;
  requested_bytes: number | null;
}

/** A kernel's memory as the server measured it. */
export interface IKernelMemory {
  /** The figure the guard decides on (each page counted once where the method allows). */
  used_bytes: number;
  /** How `used_bytes` was measured: cgroup | pss | rss | usage_request (or a newer name). */
  method: string;
  rss_bytes: number | null;
  peak_bytes: number | null;
  growth_bytes_per_s: number | null;
  sampled_at: number;
  source: string | null;
}

export interface IGpuDevice {
  index: number;
  name: string;
  used_bytes: number;
  total_bytes: number;
}

/** GPU memory of a kernel's process tree, or null where it uses none. */
export interface IKernelGpu {
  used_bytes: number;
  devices: IGpuDevice[];
}

export interface IKernel {
  id: string;
  name: string;
  path: string | null;
  pid: number | null;
  execution_state: string;
  idle_seconds: number;
  connections: number;
  started_at: number | null;
  protected: boolean;
  memory: IKernelMemory | null;
  memory_unavailable_reason: string | null;
  limit_bytes: number;
  limit_source: string;
  /** The lines, computed by the server. */
  warn_bytes: number;
  halt_bytes: number;
  kill_bytes: number | null;
  level: Level;
  /** The server's decision that a growth rate is worth showing. */
  growing: boolean;
  gpu: IKernelGpu | null;
  cells_source: 'agent' | 'iopub' | null;
  /** memguard is stopping or has stopped it. */
  halted: boolean;
}

/** One kernel with the history of its decision figure. */
export interface IKernelDetail {
  kernel: IKernel;
  history: [number, number][];
}

export interface IBudget {
  limit_bytes: number;
  limit_source: string;
  usage_bytes: number;
  /** The budget's warn line, where the server gives it. */
  warn_bytes: number | null;
}

export interface IKernelsPage {
  kernels: IKernel[];
  budget: IBudget;
}

export type CellStatus =
  | 'running'
  | 'ok'
  | 'error'
  | 'interrupted'
  | 'halted'
  | 'kernel_died'
  | 'unknown';

/** One execution of a kernel's cell. */
export interface ICellRecord {
  msg_id: string | null;
  execution_count: number | null;
  /** "" when the administrator keeps no code (then the cell is "cell [7]"). */
  code: string;
  first_line: string;
  started_at: number;
  ended_at: number | null;
  status: CellStatus;
  ename: string | null;
  memory_before_bytes: number | null;
  memory_after_bytes: number | null;
  /** The kernel's peak while it ran. */
  peak_bytes: number | null;
  /** The cell's own peak above where it started. */
  peak_above_start_bytes: number | null;
  delta_bytes: number | null;
  duration_s: number | null;
  source: 'agent' | 'iopub' | null;
  /** Queued right behind another cell (iopub only): the boundary is not exact. */
  overlapped: boolean;
}

export interface IVariable {
  name: string;
  type: string;
  bytes: number;
  qualifier: 'exact' | 'estimate' | 'at_least';
  method: string;
  device: string | null;
  note: string | null;
}

export interface IVariablesPage {
  kernel_id: string;
  /** busy: the kernel is in native code holding the GIL; unavailable: no agent. */
  status: 'ok' | 'busy' | 'unavailable';
  reason: string | null;
  taken_at: number | null;
  total_bytes: number | null;
  variables: IVariable[];
}

/** The evidence of a record, as far as the views use it. */
export interface IEvidence {
  exit_signal: string | null;
  exit_code: number | null;
  last_rss_bytes: number | null;
  peak_rss_bytes: number | null;
  limit_bytes: number | null;
  limit_source: string | null;
  oom_kill_before: number | null;
  oom_kill_after: number | null;
  kmsg_lines: string[];
  gpu_last_bytes: number | null;
  gpu_peak_bytes: number | null;
  /** The cell that was running when the kernel ended (or was interrupted). */
  running_cell: ICellRecord | null;
  top_cells: ICellRecord[];
  recent_cells: ICellRecord[];
  history: [number, number][];
}

/** A record of the journal (or the kernel_terminated event that announced it). */
export interface ITermination {
  /** The journal's id; null while only the event is known. */
  id: number | null;
  kernel_id: string;
  kernel_name: string | null;
  path: string | null;
  ended_at: number | null;
  verdict: string;
  confidence: string;
  explanation: string;
  evidence: IEvidence;
  words: IWords;
  /** The kernel is still running, with its variables. */
  survived: boolean;
  trigger: ITrigger | null;
}

export interface ITerminationPage {
  terminations: ITermination[];
  total: number;
}

/** One holder of the budget: a kernel, the server, a terminal, an orphaned kernel. */
export interface IHolder {
  kind: string;
  key: string;
  bytes: number;
  pids: number[];
}

/** A process outside the kernels and the server. */
export interface IOtherProcess {
  pid: number;
  name: string;
  cmdline: string;
  user: string;
  bytes: number;
  terminal: string | null;
}

/** Who holds the budget; the parts add up to the usage. */
export interface IBreakdown {
  usage_bytes: number;
  kernels: IHolder[];
  server: IHolder | null;
  terminals: IHolder[];
  /** Kernels left running by a server that died. */
  orphans: IHolder[];
  others: IOtherProcess[];
  others_bytes: number;
  others_count: number;
  page_cache_bytes: number;
  shmem_bytes: number;
  unattributed_bytes: number;
}

/** One GPU and the kernels of this server holding memory on it. */
export interface IGpuDeviceStatus {
  index: number;
  name: string;
  used_bytes: number;
  total_bytes: number;
  kernels: { kernel_id: string; path: string | null; bytes: number }[];
}

export interface IStatusSettings {
  dry_run: boolean;
  guard_enabled: boolean;
  /** The warn and stop lines as fractions of each kernel's limit (for the panel's words). */
  warn_fraction: number | null;
  halt_fraction: number | null;
  /** Seconds memguard waits after an interrupt, and after a shutdown request. */
  interrupt_grace: number | null;
  shutdown_grace: number | null;
}

/** One row of the server's verdict table. */
export interface IVerdictInfo {
  severity: Severity;
  survived: boolean;
  headline: string;
  /** No notice for this one (the user's own shutdown, the server's shutdown). */
  quiet: boolean;
}

export interface IDoctorCheck {
  topic: string;
  state: 'ok' | 'warning' | 'info';
  text: string;
}

/** A kernel a dead server left running, and what this server did with it. */
export interface IOrphan {
  kernel_id: string;
  pid: number | null;
  path: string | null;
  bytes: number | null;
  action: 'stopped' | 'kept';
}

export interface IStatus {
  version: string;
  budget: IBudget;
  /** null until the first host scan. */
  breakdown: IBreakdown | null;
  settings: IStatusSettings;
  display_units: Units | null;
  verdicts: Record<string, IVerdictInfo>;
  doctor: IDoctorCheck[];
  orphans: IOrphan[];
  can_halt: boolean;
  gpu_devices: IGpuDeviceStatus[];
}

/** A kernel holding memory on a GPU, in a gpu_pressure event. */
export interface IGpuHolder {
  kernel_id: string;
  path: string | null;
  bytes: number;
  idle: boolean;
  /** memguard already shut it down to make room. */
  culled: boolean;
}
