/**
 * The one registry of notice ids: one notice per incident (kernel events, memory pressure,
 * GPU pressure, a server that stopped abruptly), emitted once and then updated in place.
 * Pure (jest-tested): it talks to JupyterLab's notifications through `INotifier`.
 */
import { INoticeView } from '../texts/notices';

/** What the registry needs of JupyterLab's Notification API. */
export interface INotifier<A> {
  /** Show a new notice; its id. */
  emit(view: INoticeView, actions: A[]): string;
  /** Update a notice in place; false when it is not shown any more. */
  update(id: string, view: INoticeView, actions: A[]): boolean;
  dismiss(id: string): void;
}

function same(a: INoticeView, b: INoticeView): boolean {
  return (
    a.message === b.message &&
    a.type === b.type &&
    a.autoClose === b.autoClose &&
    a.actions.join() === b.actions.join()
  );
}

export class NoticeRegistry<A> {
  constructor(private readonly notifier: INotifier<A>) {}

  /** The notice id of an incident, if it is shown. */
  idOf(key: string): string | null {
    return this._ids.get(key) ?? null;
  }

  /** The incident of a notice id. */
  keyOf(id: string): string | null {
    return this._keys.get(id) ?? null;
  }

  /**
   * Show an incident's notice: a new one the first time, else the same one updated in place
   * (nothing is done when it already says that). Returns its id.
   */
  show(key: string, view: INoticeView, actions: A[]): string {
    const id = this._ids.get(key);
    if (id !== undefined) {
      const shown = this._views.get(key);
      if (shown && same(shown, view)) {
        return id;
      }
      if (this.notifier.update(id, view, actions)) {
        this._views.set(key, view);
        return id;
      }
      this._drop(key);
    }
    const fresh = this.notifier.emit(view, actions);
    this._ids.set(key, fresh);
    this._keys.set(fresh, key);
    this._views.set(key, view);
    return fresh;
  }

  /** Close an incident's notice (it has nothing more to say). */
  close(key: string): void {
    const id = this._ids.get(key);
    if (id !== undefined) {
      this._drop(key);
      this.notifier.dismiss(id);
    }
  }

  /**
   * A notice went away (dismissed, closed by time, or by us): forget it. Returns its
   * incident's key, or null for a notice that is not ours.
   */
  removed(id: string): string | null {
    const key = this._keys.get(id) ?? null;
    if (key !== null) {
      this._drop(key);
    }
    return key;
  }

  private _drop(key: string): void {
    const id = this._ids.get(key);
    if (id !== undefined) {
      this._keys.delete(id);
    }
    this._ids.delete(key);
    this._views.delete(key);
  }

  private _ids = new Map<string, string>();
  private _keys = new Map<string, string>();
  private _views = new Map<string, INoticeView>();
}
