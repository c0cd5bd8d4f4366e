/**
 * Small typed decoders for what the server sends (REST answers, events): each checks one
 * value and gives it its TypeScript type, or throws a DecodeError that says where and what.
 * Lists of records can skip the records that do not decode (each skip is reported once per
 * path), so one odd kernel does not blank the whole panel.
 */

/** A value that is not what the contract says. */
export class DecodeError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    received: unknown
  ) {
    super(
      `${path || 'value'}: expected ${expected}, got ${describe(received)}`
    );
  }
}

/** Checks one value at `path` (for the error) and returns it typed. */
export type Decoder<T> = (value: unknown, path: string) => T;

function describe(value: unknown): string {
  if (value === undefined) {
    return 'nothing';
  }
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  return typeof value === 'string' ? `"${value.slice(0, 40)}"` : typeof value;
}

/** Whether a value is a JSON object (not null, not a list). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export const str: Decoder<string> = (value, path) => {
  if (typeof value !== 'string') {
    throw new DecodeError(path, 'a string', value);
  }
  return value;
};

/** A finite number. */
export const num: Decoder<number> = (value, path) => {
  if (typeof value !== 'number' || !isFinite(value)) {
    throw new DecodeError(path, 'a number', value);
  }
  return value;
};

export const bool: Decoder<boolean> = (value, path) => {
  if (typeof value !== 'boolean') {
    throw new DecodeError(path, 'true or false', value);
  }
  return value;
};

/** null (or absent) stays null; anything else must decode. */
export function nullable<T>(decoder: Decoder<T>): Decoder<T | null> {
  return (value, path) =>
    value === null || value === undefined ? null : decoder(value, path);
}

/** Absent or null gives `fallback`; anything else must decode. */
export function withDefault<T>(decoder: Decoder<T>, fallback: T): Decoder<T> {
  return (value, path) =>
    value === null || value === undefined ? fallback : decoder(value, path);
}

/** One of the strings given. */
export function oneOf<T extends string>(values: ReadonlyArray<T>): Decoder<T> {
  return (value, path) => {
    const found = values.find(v => v === value);
    if (found === undefined) {
      throw new DecodeError(path, values.join(' | '), value);
    }
    return found;
  };
}

/** One of the strings given; another string (a newer server's) gives `fallback`. */
export function oneOfOr<T extends string>(
  values: ReadonlyArray<T>,
  fallback: T
): Decoder<T> {
  const strict = oneOf(values);
  return (value, path) => {
    str(value, path);
    try {
      return strict(value, path);
    } catch {
      return fallback;
    }
  };
}

export function array<T>(item: Decoder<T>): Decoder<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) {
      throw new DecodeError(path, 'a list', value);
    }
    return value.map((v, i) => item(v, `${path}[${i}]`));
  };
}

/** Where skipped records are reported (the console, unless a test says otherwise). */
let report: (error: DecodeError) => void = error =>
  console.warn(
    'memguard: skipped a record the page cannot read:',
    error.message
  );

export function onSkipped(handler: (error: DecodeError) => void): void {
  report = handler;
}

/** A list whose items that do not decode are left out (and reported). */
export function lenientArray<T>(item: Decoder<T>): Decoder<T[]> {
  return (value, path) => {
    if (!Array.isArray(value)) {
      throw new DecodeError(path, 'a list', value);
    }
    const out: T[] = [];
    value.forEach((v, i) => {
      try {
        out.push(item(v, `${path}[${i}]`));
      } catch (error) {
        if (!(error instanceof DecodeError)) {
          throw error;
        }
        report(error);
      }
    });
    return out;
  };
}

/** A [time, bytes] sample. */
export const sample: Decoder<[number, number]> = (value, path) => {
  if (!Array.isArray(value) || value.length < 2) {
    throw new DecodeError(path, 'a [time, bytes] pair', value);
  }
  return [num(value[0], `${path}[0]`), num(value[1], `${path}[1]`)];
};

/** The decoders of an object's fields, one per field of T. */
export type Fields<T> = { [K in keyof T]-?: Decoder<T[K]> };

/** A JSON object with the fields given (other fields are ignored). */
export function object<T>(fields: Fields<T>): Decoder<T> {
  const keys = Object.keys(fields) as (keyof T & string)[];
  return (value, path) => {
    if (!isRecord(value)) {
      throw new DecodeError(path, 'an object', value);
    }
    const out: Partial<T> = {};
    for (const key of keys) {
      out[key] = fields[key](value[key], path ? `${path}.${key}` : key);
    }
    return out as T;
  };
}

/** A JSON object used as a map (name → value). */
export function dict<T>(item: Decoder<T>): Decoder<Record<string, T>> {
  return (value, path) => {
    if (!isRecord(value)) {
      throw new DecodeError(path, 'an object', value);
    }
    const out: Record<string, T> = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = item(v, `${path}.${key}`);
    }
    return out;
  };
}

/** A field that may hold anything, dropped to `fallback` when it is not what it should be. */
export function tolerant<T>(decoder: Decoder<T>, fallback: T): Decoder<T> {
  return (value, path) => {
    try {
      return value === null || value === undefined
        ? fallback
        : decoder(value, path);
    } catch (error) {
      if (error instanceof DecodeError) {
        return fallback;
      }
      throw error;
    }
  };
}

export type Decoded<T> =
  { ok: true; value: T } | { ok: false; error: DecodeError };

/** Decode without throwing. */
export function decode<T>(decoder: Decoder<T>, value: unknown): Decoded<T> {
  try {
    return { ok: true, value: decoder(value, '') };
  } catch (error) {
    if (error instanceof DecodeError) {
      return { ok: false, error };
    }
    throw error;
  }
}
