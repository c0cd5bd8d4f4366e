/**
 * What memguard watches of JupyterLab's own sessions:
 * - JupyterLab's "Kernel Restarting — appears to have died" dialog (seen through
 *   `Dialog.tracker`) is held back for a few seconds: when memguard knows why the kernel
 *   died, the dialog is closed and memguard's notice is the one message; when it does not,
 *   JupyterLab's dialog is shown as it is.
 * - A notebook's kernel dying or coming back makes the model ask the journal or poll.
 * - A kernel memguard stopped is gone from the server: JupyterLab is told at once.
 * - A notebook opened whose last kernel died with an abruptly stopped server gets that
 *   record's notice, once.
 */
import { Dialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { MemoryModel } from './model/model';
import { ITermination } from './model/types';
import { ITrans } from './texts/common';

/** How long JupyterLab's death dialog is held while memguard is asked why. */
const HOLD_MS = 6000;

export interface ILifecycleOptions {
  model: MemoryModel;
  tracker: INotebookTracker | null;
  /** JupyterLab's own bundle, to recognise its dialog in any language. */
  jlTrans: ITrans;
  /** Make JupyterLab forget sessions and kernels the server no longer has. */
  refreshRunning: () => Promise<void>;
}

export class Lifecycle {
  constructor(private readonly options: ILifecycleOptions) {
    const { model, tracker } = options;
    model.incidentChanged.connect((_, incident) => {
      if (incident.phase === 'ended') {
        void options.refreshRunning();
      }
    });
    model.serverDied.connect((_, path) => {
      if (this._openAt(path)) {
        void model.checkServerDied(path);
      }
    });
    tracker?.widgetAdded.connect((_, panel) => this._watch(panel));
    tracker?.forEach(panel => this._watch(panel));
    Dialog.tracker.widgetAdded.connect((_, dialog) => this._onDialog(dialog));
  }

  private _openAt(path: string): boolean {
    return !!this.options.tracker?.find(p => p.context.path === path);
  }

  private _watch(panel: NotebookPanel): void {
    const { model } = this.options;
    const context = panel.sessionContext;
    void panel.context.ready.then(() => {
      void model.ready.then(() => model.checkServerDied(panel.context.path));
    });
    context.statusChanged.connect((_, status) => {
      const kernelId = context.session?.kernel?.id;
      if (!kernelId) {
        return;
      }
      if (status === 'autorestarting' || status === 'dead') {
        // Events can be missed (a reconnect): the journal knows too.
        setTimeout(() => {
          if (!this._knownEnd(kernelId)) {
            void model.askJournal(kernelId);
          }
        }, 2500);
      } else if (status === 'idle') {
        const ended = model.incidents.some(
          i =>
            i.phase === 'ended' &&
            (i.kernelId === kernelId || i.path === context.path)
        );
        if (ended) {
          void model.refresh();
        }
      }
    });
    context.kernelChanged.connect(() => void model.refresh());
  }

  /** The end memguard knows of a kernel in the last two minutes. */
  private _knownEnd(kernelId: string): ITermination | null {
    const incident = this.options.model.incidentOf(kernelId);
    const t = incident?.termination;
    if (
      t &&
      (incident.phase === 'ended' || incident.phase === 'back') &&
      Date.now() / 1000 - (t.ended_at ?? 0) < 120
    ) {
      return t;
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
    this.options.tracker?.forEach(panel => {
      const session = panel.sessionContext.session;
      if (!session?.kernel || found) {
        return;
      }
      const body = this.options.jlTrans.__(
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
    const t = await this._waitForEnd(kernelId);
    if (dialog.isDisposed) {
      return;
    }
    if (t && t.verdict !== 'unknown') {
      dialog.resolve();
      return;
    }
    if (t) {
      // memguard knows nothing more than JupyterLab: its dialog is the one message.
      const incident = this.options.model.incidentOf(kernelId);
      if (incident) {
        this.options.model.patchIncident(incident.key, { phase: 'closed' });
      }
    }
    dialog.removeClass('jp-memguard-held');
  }

  private _waitForEnd(kernelId: string): Promise<ITermination | null> {
    const { model } = this.options;
    const known = this._knownEnd(kernelId);
    if (known) {
      return Promise.resolve(known);
    }
    return new Promise(resolve => {
      const timers: ReturnType<typeof setTimeout>[] = [];
      const finish = (t: ITermination | null): void => {
        model.incidentChanged.disconnect(onChange);
        timers.forEach(clearTimeout);
        resolve(t);
      };
      const onChange = (): void => {
        const t = this._knownEnd(kernelId);
        if (t) {
          finish(t);
        }
      };
      model.incidentChanged.connect(onChange);
      for (const delay of [1500, 3500]) {
        timers.push(
          setTimeout(() => void model.askJournal(kernelId, 60), delay)
        );
      }
      timers.push(setTimeout(() => finish(this._knownEnd(kernelId)), HOLD_MS));
    });
  }
}
