/**
 * What the page keeps across reloads (localStorage): the stop notices not dismissed yet, and
 * the server_died records already shown (each is shown once).
 */
import {
  decode,
  lenientArray,
  nullable,
  num,
  object,
  withDefault
} from './decode';
import { terminationFields, words } from './payloads';
import { ITermination } from './types';
import { terminationKey } from './incidents';

/** The part of the Web Storage API used here. */
export type IStorage = Pick<Storage, 'getItem' | 'setItem'>;

/** Persisted notices are forgotten after this many days. */
const KEEP_DAYS = 7;

/** How many shown server_died records are remembered. */
const KEEP_SHOWN = 200;

/** A record as the page stored it (its words gathered in `words`). */
const storedTermination = (value: unknown, path: string): ITermination => ({
  ...object({ id: nullable(num), ...terminationFields })(value, path),
  words: object({ words })(value, path).words
});

const storedNotice = object({
  termination: storedTermination,
  storedAt: withDefault(num, 0)
});

function read(storage: IStorage | null, key: string): unknown {
  try {
    const raw = storage?.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function write(storage: IStorage | null, key: string, data: unknown): void {
  try {
    storage?.setItem(key, JSON.stringify(data));
  } catch {
    // storage full or disabled: this just does not survive a reload
  }
}

/** Undismissed stop notices, newest last. */
export class NoticeStore {
  constructor(
    private readonly storage: IStorage | null,
    private readonly key: string
  ) {}

  put(t: ITermination, now: number): void {
    const all = this._all();
    if (!all.some(n => terminationKey(n.termination) === terminationKey(t))) {
      this._write([...all, { termination: t, storedAt: now }]);
    }
  }

  remove(t: ITermination): void {
    const all = this._all();
    const kept = all.filter(
      n => terminationKey(n.termination) !== terminationKey(t)
    );
    if (kept.length !== all.length) {
      this._write(kept);
    }
  }

  /** The stored records, oldest first, without the expired ones. */
  load(now: number): ITermination[] {
    const all = this._all();
    const cutoff = now - KEEP_DAYS * 86400 * 1000;
    const fresh = all.filter(n => n.storedAt >= cutoff);
    if (fresh.length !== all.length) {
      this._write(fresh);
    }
    return fresh
      .sort((a, b) => a.storedAt - b.storedAt)
      .map(n => n.termination);
  }

  private _all(): { termination: ITermination; storedAt: number }[] {
    const found = decode(
      lenientArray(storedNotice),
      read(this.storage, this.key)
    );
    return found.ok ? found.value : [];
  }

  private _write(
    notices: { termination: ITermination; storedAt: number }[]
  ): void {
    write(this.storage, this.key, notices);
  }
}

/** The ids of the records already shown once (server_died). */
export class ShownLedger {
  constructor(
    private readonly storage: IStorage | null,
    private readonly key: string
  ) {}

  has(id: number): boolean {
    return this._ids().includes(id);
  }

  /** Remember a record as shown; false when it was already. */
  add(id: number): boolean {
    const ids = this._ids();
    if (ids.includes(id)) {
      return false;
    }
    write(this.storage, this.key, [...ids, id].slice(-KEEP_SHOWN));
    return true;
  }

  private _ids(): number[] {
    const found = decode(lenientArray(num), read(this.storage, this.key));
    return found.ok ? found.value : [];
  }
}
