/**
 * Notifications: one per incident, updated as it goes (warning → halting → stopped → running
 * again), with actions where they help. Undismissed "stopped" notices are kept in
 * localStorage and shown again after a page reload while their kernel is not back.
 *
 * When a kernel dies and JupyterLab opens its "Kernel Restarting — appears to have died"
 * dialog, that dialog is held back for a few seconds: if memguard knows why the kernel died,
 * the dialog is closed and memguard's notice (with the reason) is the one message; if not,
 * JupyterLab's dialog is shown as it is.
 */
import {
  Dialog,
  ISessionContext,
  Notification,
  showDialog
} from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CommandRegistry } from '@lumino/commands';

import { haltKernel, interruptKernel } from './api';
import { notebooksOf, saveNotebooks } from './cells';
import { IIncident, terminationKey } from './incidents';
import {
  gpuPressureNotice,
  gpuStopConfirmation,
  gpuStoppedNotice,
  INoticeView,
  ITrans,
  NoticeAction,
  noticeFor,
  pressureNotice,
  pressureReliefNotice,
  stoppableHolders
} from './messages';
import { MemoryModel } from './model';
import { CommandIDs } from './tokens';
import { IGpuHolder, IGpuPressure, IPressure, ITermination } from './types';

/** A GPU notice covers the GPU out-of-memory note of the same kernel this long (ms). */
const GPU_NOTE_COVERED_MS = 60000;

/** How long JupyterLab's death dialog is held while memguard is asked why. */
const HOLD_MS = 6000;

/** Persisted notices are forgotten after this many days. */
const KEEP_DAYS = 7;

interface IStoredNotice {
  termination: ITermination;
  storedAt: number;
}

/** Undismissed notices in localStorage, keyed by termination. */
export class NoticeStore {
  constructor(readonly storageKey: string) {}

  all(): Record<string, IStoredNotice> {
    try {
      const raw = window.localStorage.getItem(this.storageKey);
      const data = raw ? JSON.parse(raw) : {};
      return data && typeof data === 'object' ? data : {};
    } catch {
      return {};
    }
  }

  put(termination: ITermination): void {
    const data = this.all();
    const key = terminationKey(termination);
    if (!data[key]) {
      data[key] = { termination, storedAt: Date.now() };
      this._write(data);
    }
  }

  remove(termination: ITermination): void {
    const data = this.all();
    const key = terminationKey(termination);
    if (data[key]) {
      delete data[key];
      this._write(data);
    }
  }

  /** The stored notices, newest first, without the expired ones. */
  load(): ITermination[] {
    const data = this.all();
    const cutoff = Date.now() - KEEP_DAYS * 86400 * 1000;
    let changed = false;
    for (const [key, value] of Object.entries(data)) {
      if (!value?.termination || value.storedAt < cutoff) {
        delete data[key];
        changed = true;
      }
    }
    if (changed) {
      this._write(data);
    }
    return Object.values(data)
      .sort((a, b) => b.storedAt - a.storedAt)
      .map(v => v.termination);
  }

  private _write(data: Record<string, IStoredNotice>): void {
    try {
      window.localStorage.setItem(this.storageKey, JSON.stringify(data));
    } catch {
      // storage full or disabled: the notice just will not survive a reload
    }
  }
}

export class Notices {
  constructor(options: {
    model: MemoryModel;
    tracker: INotebookTracker | null;
    commands: CommandRegistry;
    trans: ITrans;
    /** JupyterLab's own bundle, to recognise its dialogs in any language. */
    jlTrans: ITrans;
    /** Make JupyterLab forget sessions whose kernel the server no longer has. */
    refreshSessions?: () => Promise<void>;
  }) {
    this.refreshSessions = options.refreshSessions ?? (() => Promise.resolve());
    this.model = options.model;
    this.tracker = options.tracker;
    this.commands = options.commands;
    this.trans = options.trans;
    this.jlTrans = options.jlTrans;
    this.store = new NoticeStore(
      `jupyter-memguard:notices:${PageConfig.getBaseUrl()}`
    );
    this.model.incidentChanged.connect((_, incident) => this._render(incident));
    this.model.pressure.connect((_, data) => this._onPressure(data));
    this.model.gpuPressure.connect((_, data) => this._onGpuPressure(data));
    this.model.stateChanged.connect(() => this._checkRelief());
    Notification.manager.changed.connect((_, change) => {
      if (change.type === 'removed') {
        this._onRemoved(change.notification.id);
      }
    });
    this.tracker?.widgetAdded.connect((_, panel) => this._watch(panel));
    this.tracker?.forEach(panel => this._watch(panel));
    Dialog.tracker.widgetAdded.connect((_, dialog) => this._onDialog(dialog));
  }

  /** Show again the notices a previous page left undismissed (call once the model is ready). */
  restore(): void {
    // Oldest first, so the newest ends on top.
    for (const termination of this.store.load().reverse()) {
      this.model.restore(termination);
    }
  }

  private _render(incident: IIncident): void {
    if (this._coveredByGpu(incident)) {
      return;
    }
    const view = noticeFor(incident, {
      trans: this.trans,
      units: this.model.units,
      now: Date.now(),
      notebookOpen:
        notebooksOf(
          this.tracker,
          incident.kernelId,
          incident.termination?.path ?? incident.path
        ).length > 0
    });
    const id = this._ids.get(incident.key);
    if (!view) {
      if (id) {
        this._ids.delete(incident.key);
        this._keys.delete(id);
        Notification.dismiss(id);
      }
      if (incident.termination) {
        this.store.remove(incident.termination);
      }
      return;
    }
    if (incident.termination) {
      if (view.persist) {
        this.store.put(incident.termination);
      } else {
        this.store.remove(incident.termination);
      }
    }
    const actions = this._actions(incident, view);
    const same = this._shown.get(incident.key);
    if (
      id &&
      same &&
      same.message === view.message &&
      same.type === view.type &&
      same.actions.join() === view.actions.join()
    ) {
      return;
    }
    this._shown.set(incident.key, view);
    this._show(id ?? null, view, actions, shown => {
      this._ids.set(incident.key, shown);
      this._keys.set(shown, incident.key);
    });
    if (incident.phase === 'ended' && incident.stoppedShownAt === null) {
      this.model.patchIncident(incident.key, { stoppedShownAt: Date.now() });
    }
  }

  private _actions(
    incident: IIncident | null,
    view: INoticeView,
    extra: Partial<Record<NoticeAction, Notification.IAction>> = {}
  ): Notification.IAction[] {
    const trans = this.trans;
    const keep = (event: Event, work: () => unknown): void => {
      event.preventDefault();
      void Promise.resolve()
        .then(work)
        .catch(error => console.warn('memguard:', error));
    };
    const make = (kind: NoticeAction): Notification.IAction | null => {
      if (extra[kind]) {
        return extra[kind] ?? null;
      }
      if (!incident && kind !== 'panel' && kind !== 'dismiss') {
        return null;
      }
      const it = incident as IIncident;
      switch (kind) {
        case 'interrupt':
          return {
            label: trans.__('Interrupt the kernel'),
            caption: trans.__(
              'Stop the running cell; the kernel keeps its variables'
            ),
            displayType: 'warn',
            callback: event => keep(event, () => interruptKernel(it.kernelId))
          };
        case 'save':
          return {
            label: trans.__('Save'),
            caption: trans.__('Save the notebook now'),
            callback: event =>
              keep(event, () =>
                saveNotebooks(notebooksOf(this.tracker, it.kernelId))
              )
          };
        case 'panel':
          return {
            label: trans.__('Memory panel'),
            caption: trans.__('Open the Memory panel'),
            displayType: 'link',
            callback: event =>
              keep(event, () => this.commands.execute(CommandIDs.openPanel))
          };
        case 'details':
          return {
            label: trans.__('Details'),
            caption: trans.__(
              'What memguard found: the evidence and the memory timeline with its cells'
            ),
            displayType: 'link',
            callback: event =>
              keep(event, () =>
                it.termination
                  ? this.commands.execute(CommandIDs.openDetails, {
                      terminationKey: terminationKey(it.termination)
                    })
                  : this.commands.execute(CommandIDs.openPanel)
              )
          };
        case 'restart':
          return {
            label: trans.__('Restart the kernel'),
            caption: trans.__(
              'Start the kernel again (its variables are gone)'
            ),
            displayType: 'accent',
            callback: event => keep(event, () => this._restart(it))
          };
        case 'stopIdle':
          return null;
        case 'dismiss':
        default:
          return {
            label: trans.__('Dismiss'),
            caption: trans.__('Close this notice'),
            callback: () => undefined
          };
      }
    };
    return view.actions
      .map(make)
      .filter((action): action is Notification.IAction => action !== null);
  }

  private async _restart(incident: IIncident): Promise<void> {
    const panels = notebooksOf(
      this.tracker,
      incident.kernelId,
      incident.termination?.path ?? incident.path
    );
    for (const panel of panels) {
      const context: ISessionContext = panel.sessionContext;
      const kernel = context.session?.kernel;
      // A kernel memguard shut down is gone from the server: start a new one instead.
      const alive =
        kernel &&
        kernel.status !== 'dead' &&
        this.model.kernels.has(kernel.id) &&
        this.model.incidentOf(kernel.id)?.phase !== 'ended';
      if (alive) {
        await context.restartKernel();
      } else {
        // Drop the session of the stopped kernel first, so a new one is started.
        await this.refreshSessions();
        await context.changeKernel({
          name:
            context.prevKernelName ||
            incident.termination?.kernel_name ||
            undefined
        });
      }
    }
    await this.model.refresh();
  }

  /** One notice for memory short outside the kernels, updated by each new event. */
  private _onPressure(data: IPressure): void {
    const view = pressureNotice(data, {
      trans: this.trans,
      units: this.model.units
    });
    this._pressureShown = true;
    this._pressureAt = Date.now();
    this._show(this._pressureId, view, this._actions(null, view), id => {
      this._pressureId = id;
    });
  }

  /** The budget is back under its warning line: the pressure notice says so, then closes. */
  private _checkRelief(): void {
    const budget = this.model.budget;
    if (
      !this._pressureShown ||
      !budget ||
      this.model.budgetAt <= this._pressureAt ||
      !this._pressureId ||
      !Notification.manager.has(this._pressureId)
    ) {
      return;
    }
    if (budget.usage_bytes < budget.limit_bytes * this.model.fractions.warn) {
      this._pressureShown = false;
      const view = pressureReliefNotice(budget, {
        trans: this.trans,
        units: this.model.units
      });
      this._show(this._pressureId, view, [], id => {
        this._pressureId = id;
      });
    }
  }

  /** Emit a notice, or update the one with `id` while it is shown. */
  private _show(
    id: string | null,
    view: INoticeView,
    actions: Notification.IAction[],
    shown: (id: string) => void
  ): void {
    if (id && Notification.manager.has(id)) {
      Notification.update({
        id,
        message: view.message,
        type: view.type,
        autoClose: view.autoClose,
        actions
      });
      shown(id);
    } else {
      shown(
        Notification.emit(view.message, view.type, {
          autoClose: view.autoClose,
          actions
        })
      );
    }
  }

  /**
   * A cell ran out of GPU memory while other kernels hold that GPU: tell the user of that
   * kernel's notebook (only a page where it is open), naming the holders; one notice per
   * kernel, which also takes the place of the plain "ran out of GPU memory" note.
   */
  private _onGpuPressure(data: IGpuPressure): void {
    if (!notebooksOf(this.tracker, data.kernel_id).length) {
      return;
    }
    const ctx = { trans: this.trans, units: this.model.units };
    const view = gpuPressureNotice(data, {
      ...ctx,
      canStop: !!this.model.status?.can_halt
    });
    // The GPU out-of-memory note of the same failure, if it is already shown.
    let id = this._gpuIds.get(data.kernel_id)?.id ?? null;
    for (const [key, noteId] of this._ids) {
      const incident = this.model.incident(key);
      if (
        incident?.kernelId === data.kernel_id &&
        incident.phase === 'note' &&
        incident.termination?.verdict === 'gpu_out_of_memory' &&
        Notification.manager.has(noteId)
      ) {
        id = noteId;
        this._covered.add(key);
      }
    }
    const actions = this._actions(null, view, {
      stopIdle: this._stopIdleAction(data)
    });
    this._show(id, view, actions, shown => {
      this._gpuIds.set(data.kernel_id, { id: shown, at: Date.now() });
    });
  }

  private _stopIdleAction(data: IGpuPressure): Notification.IAction {
    const trans = this.trans;
    return {
      label: trans.__('Stop idle notebooks…'),
      caption: trans.__(
        'Shut down the idle notebooks holding this GPU (asks first); their variables are lost'
      ),
      displayType: 'warn',
      callback: event => {
        event.preventDefault();
        void this._stopIdle(data).catch(error =>
          console.warn('memguard:', error)
        );
      }
    };
  }

  private async _stopIdle(data: IGpuPressure): Promise<void> {
    const ctx = { trans: this.trans, units: this.model.units };
    // Only those still running and still idle now.
    const holders = stoppableHolders(data).filter(h => {
      const kernel = this.model.kernel(h.kernel_id);
      return !kernel || kernel.execution_state !== 'busy';
    });
    if (!holders.length) {
      return;
    }
    const text = gpuStopConfirmation(holders, ctx);
    const result = await showDialog({
      title: text.title,
      body: text.body,
      buttons: [
        Dialog.cancelButton({ label: this.trans.__('Cancel') }),
        Dialog.warnButton({ label: text.button })
      ]
    });
    if (!result.button.accept) {
      return;
    }
    const stopped: IGpuHolder[] = [];
    const failed: IGpuHolder[] = [];
    await Promise.all(
      holders.map(h =>
        haltKernel(
          h.kernel_id,
          'stopped to free GPU memory for another notebook'
        ).then(
          () => stopped.push(h),
          () => failed.push(h)
        )
      )
    );
    const view = gpuStoppedNotice(stopped, failed, ctx);
    this._show(this._gpuIds.get(data.kernel_id)?.id ?? null, view, [], id => {
      this._gpuIds.set(data.kernel_id, { id, at: Date.now() });
    });
    void this.model.refresh();
    void this.model.refreshStatus();
  }

  /** A GPU out-of-memory note whose failure a GPU notice already tells about. */
  private _coveredByGpu(incident: IIncident): boolean {
    if (this._covered.has(incident.key)) {
      return true;
    }
    if (
      incident.phase !== 'note' ||
      incident.termination?.verdict !== 'gpu_out_of_memory'
    ) {
      return false;
    }
    const gpu = this._gpuIds.get(incident.kernelId);
    if (
      gpu &&
      Date.now() - gpu.at < GPU_NOTE_COVERED_MS &&
      Notification.manager.has(gpu.id)
    ) {
      this._covered.add(incident.key);
      return true;
    }
    return false;
  }

  private _onRemoved(id: string): void {
    if (id === this._pressureId) {
      this._pressureId = null;
      this._pressureShown = false;
    }
    for (const [kernelId, gpu] of this._gpuIds) {
      if (gpu.id === id) {
        this._gpuIds.delete(kernelId);
      }
    }
    const key = this._keys.get(id);
    if (!key) {
      return;
    }
    this._keys.delete(id);
    this._ids.delete(key);
    this._shown.delete(key);
    const incident = this.model.incident(key);
    if (incident?.termination) {
      this.store.remove(incident.termination);
    }
    this.model.forget(key);
  }

  private _watch(panel: NotebookPanel): void {
    const context = panel.sessionContext;
    context.statusChanged.connect((_, status) => {
      const kernelId = context.session?.kernel?.id;
      if (!kernelId) {
        return;
      }
      if (status === 'autorestarting' || status === 'dead') {
        // Events can be missed (a reconnect): the journal knows too.
        setTimeout(() => {
          if (!this._knownEnd(kernelId)) {
            void this.model.askJournal(kernelId);
          }
        }, 2500);
      } else if (status === 'idle') {
        const incident = this.model.incidentOf(kernelId);
        const byPath = this.model.incidents.some(
          i => i.phase === 'ended' && i.path === context.path
        );
        if (incident?.phase === 'ended' || byPath) {
          void this.model.refresh();
        }
      }
    });
    context.kernelChanged.connect(() => void this.model.refresh());
  }

  private _knownEnd(kernelId: string): ITermination | null {
    const incident = this.model.incidentOf(kernelId);
    if (
      incident?.termination &&
      (incident.phase === 'ended' || incident.phase === 'back') &&
      Date.now() / 1000 - (incident.termination.ended_at ?? 0) < 120
    ) {
      return incident.termination;
    }
    return null;
  }

  /** JupyterLab's "appears to have died" dialog: hold it until memguard says why. */
  private _onDialog(dialog: Dialog<unknown>): void {
    const kernelId = this._deathDialogKernel(dialog);
    if (!kernelId) {
      return;
    }
    dialog.addClass('jp-memguard-held');
    void this._decide(dialog, kernelId);
  }

  private _deathDialogKernel(dialog: Dialog<unknown>): string | null {
    // Its body, as NotebookPanel words it (the title is not rendered yet at this point).
    const text = dialog.node.textContent ?? '';
    let found: string | null = null;
    this.tracker?.forEach(panel => {
      const session = panel.sessionContext.session;
      if (!session?.kernel || found) {
        return;
      }
      const body = this.jlTrans.__(
        'The kernel for %1 appears to have died. It will restart automatically.',
        session.path
      );
      const english = `The kernel for ${session.path} appears to have died.`;
      if (text.includes(body) || text.includes(english)) {
        found = session.kernel.id;
      }
    });
    return found;
  }

  private async _decide(
    dialog: Dialog<unknown>,
    kernelId: string
  ): Promise<void> {
    // Let showDialog() launch it first: resolving it before then would leave it half made.
    await new Promise(resolve => setTimeout(resolve, 0));
    const termination = await this._waitForEnd(kernelId);
    if (dialog.isDisposed) {
      return;
    }
    if (termination && termination.verdict !== 'unknown') {
      dialog.resolve();
      return;
    }
    if (termination) {
      // memguard knows nothing more than JupyterLab: its dialog is the one message.
      const incident = this.model.incidentOf(kernelId);
      if (incident) {
        this.model.patchIncident(incident.key, { phase: 'closed' });
      }
    }
    dialog.removeClass('jp-memguard-held');
  }

  private _waitForEnd(kernelId: string): Promise<ITermination | null> {
    const known = this._knownEnd(kernelId);
    if (known) {
      return Promise.resolve(known);
    }
    return new Promise(resolve => {
      const timers: ReturnType<typeof setTimeout>[] = [];
      const finish = (t: ITermination | null): void => {
        this.model.incidentChanged.disconnect(onChange);
        timers.forEach(clearTimeout);
        resolve(t);
      };
      const onChange = (): void => {
        const t = this._knownEnd(kernelId);
        if (t) {
          finish(t);
        }
      };
      this.model.incidentChanged.connect(onChange);
      for (const delay of [1500, 3500]) {
        timers.push(
          setTimeout(() => void this.model.askJournal(kernelId, 60), delay)
        );
      }
      timers.push(setTimeout(() => finish(this._knownEnd(kernelId)), HOLD_MS));
    });
  }

  private readonly model: MemoryModel;
  private readonly tracker: INotebookTracker | null;
  private readonly commands: CommandRegistry;
  private readonly trans: ITrans;
  private readonly jlTrans: ITrans;
  private readonly store: NoticeStore;
  private readonly refreshSessions: () => Promise<void>;
  private _ids = new Map<string, string>();
  private _keys = new Map<string, string>();
  private _shown = new Map<string, INoticeView>();
  private _pressureId: string | null = null;
  private _pressureShown = false;
  private _pressureAt = 0;
  private _gpuIds = new Map<string, { id: string; at: number }>();
  private _covered = new Set<string>();
}
