/**
 * The one notice path: the registry of notice ids, fed by the book of incidents (one notice
 * per kernel incident, updated in place) and by the records (server_died once per record).
 */
import * as api from '../api';
import { IncidentBook } from '../model/book';
import { EVENT_PREFIX } from '../model/events';
import { IIncident } from '../model/incidents';
import { IStorage, NoticeStore, ShownLedger } from '../model/persist';
import { Records } from '../model/records';
import { ITermination, IVerdictInfo } from '../model/types';
import { INoticeView, noticeFor } from '../texts/notices';
import { INotifier, NoticeRegistry } from '../views/registry';
import {
  ctx,
  haltingEvent,
  kernelInfo,
  MiB,
  terminationRecord,
  warningEvent,
  wordsOf
} from './fixtures';

jest.mock('../api');
const mockedApi = jest.mocked(api);

/** A notification centre that records what it was asked. */
class FakeNotifier implements INotifier<string> {
  shown = new Map<string, string[]>();
  gone = new Set<string>();
  emitted = 0;

  emit(view: INoticeView): string {
    this.emitted += 1;
    const id = `n${this.emitted}`;
    this.shown.set(id, [view.message]);
    return id;
  }

  update(id: string, view: INoticeView): boolean {
    if (this.gone.has(id) || !this.shown.has(id)) {
      return false;
    }
    this.shown.get(id)!.push(view.message);
    return true;
  }

  dismiss(id: string): void {
    this.gone.add(id);
  }
}

function view(message: string): INoticeView {
  return {
    message,
    type: 'warning',
    autoClose: false,
    actions: ['panel'],
    persist: false
  };
}

function memoryStorage(): IStorage & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    data,
    getItem: key => data.get(key) ?? null,
    setItem: (key, value) => void data.set(key, value)
  };
}

describe('NoticeRegistry', () => {
  it('gives an incident one notice, updated in place', () => {
    const notifier = new FakeNotifier();
    const registry = new NoticeRegistry(notifier);
    const id = registry.show('a', view('one'), []);
    expect(registry.show('a', view('two'), [])).toBe(id);
    expect(registry.show('b', view('other'), [])).not.toBe(id);
    expect(notifier.shown.get(id)).toEqual(['one', 'two']);
    expect(registry.keyOf(id)).toBe('a');
  });

  it('does nothing when the notice already says it', () => {
    const notifier = new FakeNotifier();
    const registry = new NoticeRegistry(notifier);
    const id = registry.show('a', view('one'), []);
    registry.show('a', view('one'), []);
    expect(notifier.shown.get(id)).toEqual(['one']);
  });

  it('shows a new notice once the old one is gone, and forgets dismissed ones', () => {
    const notifier = new FakeNotifier();
    const registry = new NoticeRegistry(notifier);
    const id = registry.show('a', view('one'), []);
    notifier.gone.add(id);
    const again = registry.show('a', view('two'), []);
    expect(again).not.toBe(id);
    expect(registry.removed(again)).toBe('a');
    expect(registry.idOf('a')).toBeNull();
    expect(registry.removed('not-ours')).toBeNull();
    registry.show('c', view('x'), []);
    registry.close('c');
    expect(registry.idOf('c')).toBeNull();
    expect(notifier.gone.size).toBe(2);
  });
});

/** The book feeding the registry, as the Notices view wires them. */
function wired() {
  const notifier = new FakeNotifier();
  const registry = new NoticeRegistry(notifier);
  const changes: IIncident[] = [];
  const book = new IncidentBook(incident => {
    changes.push(incident);
    const v = noticeFor(incident, {
      ...ctx,
      now: 0,
      notebookOpen: true,
      canStop: true
    });
    if (v) {
      registry.show(incident.key, v, []);
    } else {
      registry.close(incident.key);
    }
  });
  return { notifier, registry, book, changes };
}

describe('one notice per kernel incident', () => {
  it('goes warning → stopping → stopped → running again in one notice', () => {
    const { notifier, book } = wired();
    book.warning(warningEvent(), 1);
    book.warning(warningEvent({ usage_bytes: 500 * MiB }), 2);
    book.halting(haltingEvent(), 3);
    book.termination(
      terminationRecord('halted_by_memguard', {
        words: wordsOf('Kernel stopped', 'It used too much memory.')
      }),
      4,
      false
    );
    book.kernels([kernelInfo('k2', 50 * MiB)], 5, 2000);
    expect(notifier.emitted).toBe(1);
    const texts = notifier.shown.get('n1')!;
    expect(texts[0]).toMatch(/^Memory high \(a\.ipynb\)/);
    expect(texts.some(t => t.startsWith('memguard is stopping'))).toBe(true);
    expect(texts.some(t => t.startsWith('Kernel stopped'))).toBe(true);
    expect(texts[texts.length - 1]).toContain('running again');
  });

  it('turns a halt the kernel survived into its "kept" notice, in place', () => {
    const { notifier, book } = wired();
    book.halting(haltingEvent(), 1);
    book.termination(
      terminationRecord('interrupted_kept', {
        survived: true,
        words: wordsOf('Cell stopped: memory limit', 'Free `df`.')
      }),
      2,
      false
    );
    expect(notifier.emitted).toBe(1);
    expect(notifier.shown.get('n1')!.pop()).toMatch(
      /^Cell stopped: memory limit/
    );
  });

  it('applies a record once, whether it came as an event or from the journal', () => {
    const { notifier, book } = wired();
    const event = terminationRecord('oom_killed', { id: null, ended_at: 1000 });
    const row = terminationRecord('oom_killed', { id: 9, ended_at: 1000.4 });
    expect(book.termination(event, 1, false)).not.toBeNull();
    expect(book.termination(row, 2, false)).toBeNull();
    expect(book.termination(row, 3, false)).toBeNull();
    expect(notifier.emitted).toBe(1);
  });

  it('keeps memory pressure in one notice of its own', () => {
    const { notifier, book } = wired();
    const pressure = {
      usage_bytes: 1900 * MiB,
      limit_bytes: 2048 * MiB,
      kernels_bytes: null,
      outside_bytes: null,
      culprit: null,
      words: wordsOf('', 'Something outside uses 1.6 GiB.')
    };
    book.memoryPressure(pressure, 1);
    book.memoryPressure(pressure, 2);
    book.warning(warningEvent(), 3);
    expect(notifier.emitted).toBe(2);
    book.budget(
      {
        limit_bytes: 2048 * MiB,
        limit_source: 'host',
        usage_bytes: 100 * MiB,
        warn_bytes: 1600 * MiB
      },
      1600 * MiB,
      10
    );
    expect(notifier.shown.get('n1')!.pop()).toMatch(/no longer short/);
  });

  it('shows a stop notice of an earlier page again, until its kernel is back', () => {
    const { notifier, book } = wired();
    const storage = memoryStorage();
    const store = new NoticeStore(storage, 'notices');
    const t = terminationRecord('oom_killed');
    store.put(t, Date.now());
    store.put(t, Date.now());
    const loaded = store.load(Date.now());
    expect(loaded).toHaveLength(1);
    expect(loaded[0]).toEqual(t);
    book.restore(loaded[0], 1, []);
    expect(notifier.emitted).toBe(1);
    // Restored once: the same record from the journal adds nothing.
    expect(book.termination(t, 2, false)).toBeNull();
    store.remove(t);
    expect(store.load(Date.now())).toEqual([]);
  });
});

describe('server_died: shown once per record, when its notebook is opened', () => {
  const died = terminationRecord('server_died', {
    id: 40,
    path: 'a.ipynb',
    words: wordsOf(
      'The Jupyter server stopped abruptly',
      'The kernel of a.ipynb was lost with it.',
      { severity: 'warning' }
    )
  });

  function records(storage: IStorage) {
    const { notifier, book } = wired();
    const announced: string[] = [];
    const verdicts: Record<string, IVerdictInfo> = {};
    const r = new Records({
      book,
      ledger: new ShownLedger(storage, 'shown'),
      verdict: name => verdicts[name] ?? null,
      waiting: () => false,
      refresh: () => undefined,
      refreshTerminations: () => undefined,
      refreshStatus: () => undefined,
      serverDied: path => announced.push(path)
    });
    return { r, notifier, announced };
  }

  beforeEach(() => {
    mockedApi.getTerminations.mockReset();
  });

  it('asks the journal for the notebook’s record and shows it once, across reloads', async () => {
    const page = (ts: ITermination[]) => ({
      terminations: ts,
      total: ts.length
    });
    mockedApi.getTerminations.mockResolvedValue(page([died]));
    const storage = memoryStorage();
    const first = records(storage);
    expect(await first.r.serverDied('a.ipynb')).not.toBeNull();
    expect(mockedApi.getTerminations).toHaveBeenCalledWith({
      path: 'a.ipynb',
      verdict: 'server_died',
      limit: 1
    });
    expect(await first.r.serverDied('a.ipynb')).toBeNull();
    expect(first.notifier.emitted).toBe(1);
    expect(first.notifier.shown.get('n1')![0]).toMatch(
      /^The Jupyter server stopped abruptly/
    );
    // A reload: a new page, the same storage.
    const second = records(storage);
    expect(await second.r.serverDied('a.ipynb')).toBeNull();
    expect(second.notifier.emitted).toBe(0);
    // A newer record is news again.
    mockedApi.getTerminations.mockResolvedValue(page([{ ...died, id: 41 }]));
    expect(await second.r.serverDied('a.ipynb')).not.toBeNull();
    // No record, or the journal unreachable: nothing.
    mockedApi.getTerminations.mockResolvedValue(page([]));
    expect(await second.r.serverDied('b.ipynb')).toBeNull();
    mockedApi.getTerminations.mockRejectedValue(new Error('down'));
    expect(await second.r.serverDied('b.ipynb')).toBeNull();
  });

  it('does not show its event on its own: the notebook’s opening does', () => {
    const { r, notifier, announced } = records(memoryStorage());
    r.event({
      schema_id: `${EVENT_PREFIX}kernel_terminated/v1`,
      kernel_id: 'k1',
      path: 'a.ipynb',
      verdict: 'server_died',
      confidence: 'high',
      explanation: '',
      headline: 'The Jupyter server stopped abruptly',
      summary: 'It was lost.',
      severity: 'warning'
    });
    expect(announced).toEqual(['a.ipynb']);
    expect(notifier.emitted).toBe(0);
  });

  it('waits for the verdict table before a record goes in, and keeps quiet ones quiet', () => {
    const { notifier, book } = wired();
    let waiting = true;
    const r = new Records({
      book,
      ledger: new ShownLedger(memoryStorage(), 'shown'),
      verdict: name =>
        name === 'user_shutdown'
          ? { severity: 'info', survived: false, headline: '', quiet: true }
          : null,
      waiting: () => waiting,
      refresh: () => undefined,
      refreshTerminations: () => undefined,
      refreshStatus: () => undefined,
      serverDied: () => undefined
    });
    expect(r.add(terminationRecord('user_shutdown'))).toBeNull();
    expect(r.add(terminationRecord('oom_killed', { id: 8 }))).toBeNull();
    waiting = false;
    r.flush();
    expect(notifier.emitted).toBe(1);
    expect(notifier.shown.get('n1')![0]).toMatch(/^Headline of oom_killed/);
  });
});
