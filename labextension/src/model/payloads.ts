/**
 * Decoders of the REST answers of /api/memguard/* (see the contract). Required fields throw
 * when absent or of the wrong type; fields a JSON null may stand for decode to null; lists of
 * records leave out the records that do not decode.
 */
import {
  array,
  bool,
  Decoder,
  dict,
  Fields,
  lenientArray,
  nullable,
  num,
  object,
  oneOf,
  oneOfOr,
  sample,
  str,
  tolerant,
  withDefault
} from './decode';
import {
  CellStatus,
  IBreakdown,
  IBudget,
  ICellRecord,
  IDoctorCheck,
  IEvidence,
  IGpuDeviceStatus,
  IHolder,
  IKernel,
  IKernelDetail,
  IKernelGpu,
  IKernelMemory,
  IKernelsPage,
  IOrphan,
  IOtherProcess,
  IStatus,
  IStatusSettings,
  ITermination,
  ITerminationPage,
  ITrigger,
  IVariable,
  IVariablesPage,
  IVerdictInfo,
  IWords,
  Severity,
  Units
} from './types';

const optNum = nullable(num);
const optStr = nullable(str);

export const SEVERITIES: ReadonlyArray<Severity> = ['info', 'warning', 'error'];

/** Severity: a newer one than this page knows reads as a warning. */
export const severity: Decoder<Severity> = oneOfOr(SEVERITIES, 'warning');

/** The fields of the server's words, shared by every event and record. */
export const wordFields: Fields<IWords> = {
  headline: str,
  summary: str,
  advice: optStr,
  severity: withDefault(severity, 'warning')
};

export const words: Decoder<IWords> = object(wordFields);

export const trigger: Decoder<ITrigger> = object<ITrigger>({
  kind: str,
  line: tolerant(nullable(oneOf(['warn', 'halt', 'kill'] as const)), null),
  usage_bytes: optNum,
  limit_bytes: optNum,
  line_bytes: optNum,
  idle_seconds: optNum,
  timeout_seconds: optNum,
  by: optStr,
  device_index: optNum,
  requested_bytes: optNum
});

export const kernelMemory: Decoder<IKernelMemory> = object<IKernelMemory>({
  used_bytes: num,
  method: withDefault(str, 'rss'),
  rss_bytes: optNum,
  peak_bytes: optNum,
  growth_bytes_per_s: optNum,
  sampled_at: num,
  source: optStr
});

const kernelGpu: Decoder<IKernelGpu> = object<IKernelGpu>({
  used_bytes: num,
  devices: lenientArray(
    object({ index: num, name: str, used_bytes: num, total_bytes: num })
  )
});

const kernelFields: Fields<IKernel> = {
  id: str,
  name: withDefault(str, ''),
  path: optStr,
  pid: optNum,
  execution_state: withDefault(str, 'unknown'),
  idle_seconds: withDefault(num, 0),
  connections: withDefault(num, 0),
  started_at: optNum,
  protected: withDefault(bool, false),
  memory: nullable(kernelMemory),
  memory_unavailable_reason: optStr,
  limit_bytes: num,
  limit_source: withDefault(str, ''),
  warn_bytes: num,
  halt_bytes: num,
  kill_bytes: optNum,
  level: withDefault(
    oneOfOr(['ok', 'warning', 'critical'] as const, 'ok'),
    'ok'
  ),
  growing: withDefault(bool, false),
  gpu: tolerant(nullable(kernelGpu), null),
  cells_source: tolerant(nullable(oneOf(['agent', 'iopub'] as const)), null),
  halted: withDefault(bool, false)
};

export const kernel: Decoder<IKernel> = object(kernelFields);

export const budget: Decoder<IBudget> = object<IBudget>({
  limit_bytes: num,
  limit_source: withDefault(str, ''),
  usage_bytes: num,
  warn_bytes: optNum
});

export const kernelsPage: Decoder<IKernelsPage> = object<IKernelsPage>({
  kernels: lenientArray(kernel),
  budget
});

/** GET kernels/{id}: one kernel, plus the history of its decision figure. */
export const kernelDetail: Decoder<IKernelDetail> = (value, path) => ({
  kernel: kernel(value, path),
  history: object({ history: withDefault(lenientArray(sample), []) })(
    value,
    path
  ).history
});

const CELL_STATUSES: ReadonlyArray<CellStatus> = [
  'running',
  'ok',
  'error',
  'interrupted',
  'halted',
  'kernel_died',
  'unknown'
];

export const cell: Decoder<ICellRecord> = object<ICellRecord>({
  msg_id: optStr,
  execution_count: optNum,
  code: withDefault(str, ''),
  first_line: withDefault(str, ''),
  started_at: num,
  ended_at: optNum,
  status: withDefault(oneOfOr(CELL_STATUSES, 'unknown'), 'unknown'),
  ename: optStr,
  memory_before_bytes: optNum,
  memory_after_bytes: optNum,
  peak_bytes: optNum,
  peak_above_start_bytes: optNum,
  delta_bytes: optNum,
  duration_s: optNum,
  source: tolerant(nullable(oneOf(['agent', 'iopub'] as const)), null),
  overlapped: withDefault(bool, false)
});

export const cellsPage: Decoder<{ cells: ICellRecord[] }> = object({
  cells: lenientArray(cell)
});

export const variable: Decoder<IVariable> = object<IVariable>({
  name: str,
  type: withDefault(str, ''),
  bytes: num,
  qualifier: oneOfOr(['exact', 'estimate', 'at_least'] as const, 'estimate'),
  method: withDefault(str, ''),
  device: optStr,
  note: optStr
});

export const variablesPage: Decoder<IVariablesPage> = object<IVariablesPage>({
  kernel_id: str,
  status: oneOfOr(['ok', 'busy', 'unavailable'] as const, 'unavailable'),
  reason: optStr,
  taken_at: optNum,
  total_bytes: optNum,
  variables: withDefault(lenientArray(variable), [])
});

/** The evidence: each field is read where it has the expected type, else left out. */
export const evidence: Decoder<IEvidence> = object<IEvidence>({
  exit_signal: tolerant(nullable(str), null),
  exit_code: tolerant(nullable(num), null),
  last_rss_bytes: tolerant(nullable(num), null),
  peak_rss_bytes: tolerant(nullable(num), null),
  limit_bytes: tolerant(nullable(num), null),
  limit_source: tolerant(nullable(str), null),
  oom_kill_before: tolerant(nullable(num), null),
  oom_kill_after: tolerant(nullable(num), null),
  kmsg_lines: tolerant(array(str), []),
  gpu_last_bytes: tolerant(nullable(num), null),
  gpu_peak_bytes: tolerant(nullable(num), null),
  running_cell: tolerant(nullable(cell), null),
  top_cells: tolerant(lenientArray(cell), []),
  recent_cells: tolerant(lenientArray(cell), []),
  history: tolerant(lenientArray(sample), [])
});

/** The fields of a record other than its words. */
export const terminationFields = {
  kernel_id: str,
  kernel_name: optStr,
  path: optStr,
  ended_at: optNum,
  verdict: str,
  confidence: withDefault(str, 'low'),
  explanation: withDefault(str, ''),
  evidence: withDefault(evidence, evidence({}, 'evidence')),
  survived: withDefault(bool, false),
  trigger: tolerant(nullable(trigger), null)
};

/** A journal row: its fields, with its words gathered in `words`. */
export const termination: Decoder<ITermination> = (value, path) => {
  const base = object({ id: optNum, ...terminationFields })(value, path);
  return { ...base, words: words(value, path) };
};

export const terminationPage: Decoder<ITerminationPage> =
  object<ITerminationPage>({
    terminations: lenientArray(termination),
    total: withDefault(num, 0)
  });

const holder: Decoder<IHolder> = object<IHolder>({
  kind: withDefault(str, ''),
  key: str,
  bytes: num,
  pids: withDefault(array(num), [])
});

export const otherProcess: Decoder<IOtherProcess> = object<IOtherProcess>({
  pid: num,
  name: withDefault(str, ''),
  cmdline: withDefault(str, ''),
  user: withDefault(str, ''),
  bytes: num,
  terminal: optStr
});

export const breakdown: Decoder<IBreakdown> = object<IBreakdown>({
  usage_bytes: num,
  kernels: withDefault(lenientArray(holder), []),
  server: tolerant(nullable(holder), null),
  terminals: withDefault(lenientArray(holder), []),
  orphans: withDefault(lenientArray(holder), []),
  others: withDefault(lenientArray(otherProcess), []),
  others_bytes: withDefault(num, 0),
  others_count: withDefault(num, 0),
  page_cache_bytes: withDefault(num, 0),
  shmem_bytes: withDefault(num, 0),
  unattributed_bytes: withDefault(num, 0)
});

const gpuDevice: Decoder<IGpuDeviceStatus> = object<IGpuDeviceStatus>({
  index: num,
  name: withDefault(str, ''),
  used_bytes: num,
  total_bytes: num,
  kernels: withDefault(
    lenientArray(object({ kernel_id: str, path: optStr, bytes: num })),
    []
  )
});

const settings: Decoder<IStatusSettings> = object<IStatusSettings>({
  dry_run: withDefault(bool, false),
  guard_enabled: withDefault(bool, true),
  warn_fraction: optNum,
  halt_fraction: optNum,
  interrupt_grace: optNum,
  shutdown_grace: optNum
});

export const verdictInfo: Decoder<IVerdictInfo> = object<IVerdictInfo>({
  severity: withDefault(severity, 'warning'),
  survived: withDefault(bool, false),
  headline: withDefault(str, ''),
  quiet: withDefault(bool, false)
});

const doctorCheck: Decoder<IDoctorCheck> = object<IDoctorCheck>({
  topic: str,
  state: oneOfOr(['ok', 'warning', 'info'] as const, 'info'),
  text: str
});

const orphan: Decoder<IOrphan> = object<IOrphan>({
  kernel_id: str,
  pid: optNum,
  path: optStr,
  bytes: optNum,
  action: oneOfOr(['stopped', 'kept'] as const, 'kept')
});

const units: Decoder<Units | null> = tolerant(
  nullable(oneOf(['binary', 'decimal'] as const)),
  null
);

/** The doctor's checks ({checks: [...]}), or none. */
const doctor: Decoder<IDoctorCheck[]> = (value, path) =>
  tolerant(object({ checks: lenientArray(doctorCheck) }), { checks: [] })(
    value,
    path
  ).checks;

/** display_units is the status's own; older servers had it under settings. */
const displayUnits: Decoder<Units | null> = (value, path) => {
  const found = object({
    display_units: units,
    settings: tolerant(object({ display_units: units }), {
      display_units: null
    })
  })(value, path);
  return found.display_units ?? found.settings.display_units;
};

export const status: Decoder<IStatus> = (value, path) => ({
  ...object<Omit<IStatus, 'display_units'>>({
    version: withDefault(str, ''),
    budget,
    breakdown: tolerant(nullable(breakdown), null),
    settings: withDefault(settings, settings({}, 'settings')),
    verdicts: tolerant(dict(verdictInfo), {}),
    doctor,
    orphans: withDefault(lenientArray(orphan), []),
    can_halt: withDefault(bool, false),
    gpu_devices: withDefault(lenientArray(gpuDevice), [])
  })(value, path),
  display_units: displayUnits(value, path)
});
