/**
 * The notices: one path for every kind (a warning, a halt, a stop, an interrupt the kernel
 * survived, a child or GPU out of memory, pressure from outside, a server that stopped
 * abruptly). Each incident of the model gets one notice, through one registry of notice ids,
 * updated in place as the incident moves on. Undismissed stop notices are kept in
 * localStorage and shown again after a reload while their kernel is not back.
 */
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';

import { keepFigures } from '../format';
import { IIncident } from '../model/incidents';
import { MemoryModel } from '../model/model';
import { IStorage, NoticeStore } from '../model/persist';
import { ITrans } from '../texts/common';
import { INoticeView, noticeFor } from '../texts/notices';
import { INoticeActionsOptions, NoticeActions } from './noticeActions';
import { notebooksOf } from './notebooks';
import { INotifier, NoticeRegistry } from './registry';

/** JupyterLab's notifications, as the registry sees them. */
export const jupyterNotifier: INotifier<Notification.IAction> = {
  emit: (view, actions) =>
    Notification.emit(keepFigures(view.message), view.type, {
      autoClose: view.autoClose,
      actions
    }),
  update: (id, view, actions) =>
    Notification.manager.has(id) &&
    Notification.update({
      id,
      message: keepFigures(view.message),
      type: view.type,
      autoClose: view.autoClose,
      actions
    }),
  dismiss: id => Notification.dismiss(id)
};

export interface INoticesOptions extends INoticeActionsOptions {
  storage: IStorage | null;
  storageKey: string;
  notifier?: INotifier<Notification.IAction>;
}

export class Notices {
  constructor(options: INoticesOptions) {
    this._model = options.model;
    this._tracker = options.tracker;
    this._trans = options.trans;
    this._store = new NoticeStore(options.storage, options.storageKey);
    this._actions = new NoticeActions(options);
    this._registry = new NoticeRegistry(options.notifier ?? jupyterNotifier);
    this._model.incidentChanged.connect((_, incident) =>
      this._render(incident)
    );
    Notification.manager.changed.connect((_, change) => {
      if (change.type === 'removed') {
        this._removed(change.notification.id);
      }
    });
  }

  /** Show again the stop notices an earlier page left undismissed (once the model is ready). */
  restore(): void {
    // Oldest first, so the newest ends on top.
    for (const t of this._store.load(Date.now())) {
      this._model.restore(t);
    }
  }

  private _render(incident: IIncident): void {
    const model = this._model;
    const path = incident.termination?.path ?? incident.path;
    const panels = notebooksOf(this._tracker, incident.kernelId, path);
    // A GPU full of other notebooks is news only where the failing notebook is open.
    if (incident.gpu && !panels.length) {
      return;
    }
    const view = noticeFor(incident, {
      trans: this._trans,
      units: model.units,
      now: Date.now(),
      notebookOpen: panels.length > 0,
      canStop: !!model.status?.can_halt
    });
    this._persist(incident, view);
    if (!view) {
      this._registry.close(incident.key);
      if (incident.phase === 'closed') {
        model.forget(incident.key);
      }
      return;
    }
    const actions = this._actions.for(incident, view, panels);
    this._registry.show(incident.key, view, actions);
    if (incident.phase === 'ended' && incident.stoppedShownAt === null) {
      model.patchIncident(incident.key, { stoppedShownAt: Date.now() });
    }
  }

  /** A stop notice is kept across reloads until it is dismissed or the kernel is back. */
  private _persist(incident: IIncident, view: INoticeView | null): void {
    const t = incident.termination;
    if (t) {
      if (view?.persist) {
        this._store.put(t, Date.now());
      } else {
        this._store.remove(t);
      }
    }
  }

  /** A notice was dismissed (or closed by time): its incident is over for this page. */
  private _removed(id: string): void {
    const key = this._registry.removed(id);
    if (key === null) {
      return;
    }
    const incident = this._model.incident(key);
    if (incident?.termination) {
      this._store.remove(incident.termination);
    }
    this._model.forget(key);
  }

  private readonly _model: MemoryModel;
  private readonly _tracker: INotebookTracker | null;
  private readonly _trans: ITrans;
  private readonly _store: NoticeStore;
  private readonly _actions: NoticeActions;
  private readonly _registry: NoticeRegistry<Notification.IAction>;
}
