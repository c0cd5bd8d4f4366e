/**
 * Decoders of memguard's events on the server's event bus, one per schema
 * (https://events.jupyter.org/jupyter_memguard/<kind>/v1), into one union the model switches on.
 */
import {
  bool,
  DecodeError,
  Decoder,
  isRecord,
  lenientArray,
  nullable,
  num,
  object,
  oneOfOr,
  str,
  tolerant,
  withDefault
} from './decode';
import {
  otherProcess,
  termination,
  trigger,
  variable,
  wordFields,
  words
} from './payloads';
import {
  IGpuHolder,
  IOtherProcess,
  ITermination,
  ITrigger,
  IVariable,
  IWords
} from './types';

export const EVENT_PREFIX = 'https://events.jupyter.org/jupyter_memguard/';

/** The kind of a memguard schema id ("…/jupyter_memguard/memory_warning/v1"), else null. */
export function eventKind(schemaId: string): string | null {
  if (!schemaId.startsWith(EVENT_PREFIX)) {
    return null;
  }
  return schemaId.slice(EVENT_PREFIX.length).split('/')[0] || null;
}

const optNum = nullable(num);
const optStr = nullable(str);

/** What every event about one kernel carries. */
interface IKernelEvent {
  kernel_id: string;
  path: string | null;
  words: IWords;
}

export interface IWarningEvent extends IKernelEvent {
  usage_bytes: number | null;
  limit_bytes: number | null;
  warn_bytes: number | null;
  halt_bytes: number | null;
  kill_bytes: number | null;
  trigger: ITrigger | null;
  /** The largest few variables, when the kernel's agent answered. */
  variables: IVariable[] | null;
}

export interface IHaltingEvent extends IKernelEvent {
  usage_bytes: number | null;
  limit_bytes: number | null;
  action: string | null;
  trigger: ITrigger | null;
  dry_run: boolean;
  variables: IVariable[] | null;
}

export interface IHaltedEvent extends IKernelEvent {
  step: 'interrupt' | 'restart' | 'shutdown' | 'kill';
  usage_bytes: number | null;
  limit_bytes: number | null;
  dry_run: boolean;
}

export interface ICulledEvent extends IKernelEvent {
  idle_seconds: number | null;
  usage_bytes: number | null;
  trigger: ITrigger | null;
  dry_run: boolean;
}

export interface IPressureEvent {
  usage_bytes: number | null;
  limit_bytes: number | null;
  kernels_bytes: number | null;
  outside_bytes: number | null;
  culprit: IOtherProcess | null;
  words: IWords;
}

export interface IGpuPressureEvent extends IKernelEvent {
  device: number | null;
  requested_bytes: number | null;
  holders: IGpuHolder[];
}

export type MemguardEvent =
  | { kind: 'memory_warning'; data: IWarningEvent }
  | { kind: 'kernel_halting'; data: IHaltingEvent }
  | { kind: 'kernel_halted'; data: IHaltedEvent }
  | { kind: 'kernel_culled'; data: ICulledEvent }
  | { kind: 'kernel_terminated'; data: ITermination }
  | { kind: 'memory_pressure'; data: IPressureEvent }
  | { kind: 'gpu_pressure'; data: IGpuPressureEvent };

const variables = tolerant(nullable(lenientArray(variable)), null);

/** The fields of an event with its words gathered in `words`. */
function withWords<T>(
  fields: Decoder<Omit<T, 'words'>>,
  wordsOf: Decoder<IWords> = words
): Decoder<T> {
  return (value, path) =>
    ({ ...fields(value, path), words: wordsOf(value, path) }) as T;
}

/**
 * The words of memory_pressure and gpu_pressure: `summary`, else the `message` they had
 * before (gpu_pressure keeps it for older clients); the headline may be absent.
 */
const pressureWords: Decoder<IWords> = (value, path) => {
  const w = object({
    ...wordFields,
    headline: withDefault(str, ''),
    summary: optStr,
    message: optStr
  })(value, path);
  const summary = w.summary ?? w.message;
  if (summary === null) {
    throw new DecodeError(`${path}summary`, 'a string', undefined);
  }
  return {
    headline: w.headline,
    summary,
    advice: w.advice,
    severity: w.severity
  };
};

const warning = withWords<IWarningEvent>(
  object({
    kernel_id: str,
    path: optStr,
    usage_bytes: optNum,
    limit_bytes: optNum,
    warn_bytes: optNum,
    halt_bytes: optNum,
    kill_bytes: optNum,
    trigger: tolerant(nullable(trigger), null),
    variables
  })
);

const halting = withWords<IHaltingEvent>(
  object({
    kernel_id: str,
    path: optStr,
    usage_bytes: optNum,
    limit_bytes: optNum,
    action: optStr,
    trigger: tolerant(nullable(trigger), null),
    dry_run: withDefault(bool, false),
    variables
  })
);

const halted = withWords<IHaltedEvent>(
  object({
    kernel_id: str,
    path: optStr,
    step: oneOfOr(
      ['interrupt', 'restart', 'shutdown', 'kill'] as const,
      'kill'
    ),
    usage_bytes: optNum,
    limit_bytes: optNum,
    dry_run: withDefault(bool, false)
  })
);

const culled = withWords<ICulledEvent>(
  object({
    kernel_id: str,
    path: optStr,
    idle_seconds: optNum,
    usage_bytes: optNum,
    trigger: tolerant(nullable(trigger), null),
    dry_run: withDefault(bool, false)
  })
);

/** kernel_terminated: a record as the journal has it, its id named termination_id. */
const terminated: Decoder<ITermination> = (value, path) => {
  const id = object({ termination_id: optNum })(value, path).termination_id;
  return termination(isRecord(value) ? { ...value, id } : value, path);
};

const pressure = withWords<IPressureEvent>(
  object({
    usage_bytes: optNum,
    limit_bytes: optNum,
    kernels_bytes: optNum,
    outside_bytes: optNum,
    culprit: tolerant(nullable(otherProcess), null)
  }),
  pressureWords
);

const gpuHolder: Decoder<IGpuHolder> = object<IGpuHolder>({
  kernel_id: str,
  path: optStr,
  bytes: num,
  idle: withDefault(bool, false),
  culled: withDefault(bool, false)
});

const gpuPressure = withWords<IGpuPressureEvent>(
  object({
    kernel_id: str,
    path: optStr,
    device: optNum,
    requested_bytes: optNum,
    holders: withDefault(lenientArray(gpuHolder), [])
  }),
  pressureWords
);

export type EventDecoded =
  | { ok: true; event: MemguardEvent }
  | { ok: false; kind: string; error: DecodeError };

/**
 * An emission of the server's event bus: null when it is not memguard's (or of a kind this
 * page does not know), else the decoded event or why it could not be read.
 */
export function decodeEvent(emission: unknown): EventDecoded | null {
  if (!isRecord(emission) || typeof emission.schema_id !== 'string') {
    return null;
  }
  const kind = eventKind(emission.schema_id);
  try {
    switch (kind) {
      case 'memory_warning':
        return { ok: true, event: { kind, data: warning(emission, '') } };
      case 'kernel_halting':
        return { ok: true, event: { kind, data: halting(emission, '') } };
      case 'kernel_halted':
        return { ok: true, event: { kind, data: halted(emission, '') } };
      case 'kernel_culled':
        return { ok: true, event: { kind, data: culled(emission, '') } };
      case 'kernel_terminated':
        return { ok: true, event: { kind, data: terminated(emission, '') } };
      case 'memory_pressure':
        return { ok: true, event: { kind, data: pressure(emission, '') } };
      case 'gpu_pressure':
        return { ok: true, event: { kind, data: gpuPressure(emission, '') } };
      default:
        return null;
    }
  } catch (error) {
    if (error instanceof DecodeError) {
      return { ok: false, kind: kind ?? '', error };
    }
    throw error;
  }
}
