/**
 * The buttons of memguard's notices: interrupt, save, the Memory panel, Details, restart
 * (with "Restart and run cells [1]–[6] again" through JupyterLab's own
 * notebook:restart-and-run-to-selected, stopping above the cell that was running), stop the
 * idle notebooks holding a GPU, dismiss. Every call to the server goes through the model.
 */
import {
  Dialog,
  ISessionContext,
  Notification,
  SemanticCommand,
  showDialog
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { CommandRegistry } from '@lumino/commands';

import { IIncident, terminationKey } from '../model/incidents';
import { MemoryModel } from '../model/model';
import { IGpuHolder } from '../model/types';
import { CommandIDs } from '../tokens';
import { ITrans } from '../texts/common';
import {
  gpuStopConfirmation,
  INoticeView,
  IRunRange,
  NoticeAction,
  restartCaption,
  restartLabel,
  stoppableHolders
} from '../texts/notices';
import { CellIndex, saveNotebooks } from './notebooks';

/** JupyterLab's command that restarts a notebook's kernel and runs up to the active cell. */
export const RESTART_AND_RUN_TO_SELECTED =
  'notebook:restart-and-run-to-selected';

export interface INoticeActionsOptions {
  model: MemoryModel;
  tracker: INotebookTracker | null;
  cells: CellIndex | null;
  commands: CommandRegistry;
  trans: ITrans;
  /** Make JupyterLab forget sessions whose kernel the server no longer has. */
  refreshSessions: () => Promise<void>;
}

export class NoticeActions {
  constructor(private readonly options: INoticeActionsOptions) {}

  /** The buttons of a notice, for the notebooks of its kernel open on this page. */
  for(
    incident: IIncident,
    view: INoticeView,
    panels: NotebookPanel[]
  ): Notification.IAction[] {
    return view.actions
      .map(kind => this._make(kind, incident, panels))
      .filter((a): a is Notification.IAction => a !== null);
  }

  private _make(
    kind: NoticeAction,
    incident: IIncident,
    panels: NotebookPanel[]
  ): Notification.IAction | null {
    const { model, commands, trans } = this.options;
    const kernelId = incident.kernelId;
    switch (kind) {
      case 'interrupt':
        return kernelId
          ? {
              label: trans.__('Interrupt the kernel'),
              caption: trans.__(
                'Stop the running cell; the kernel keeps its variables'
              ),
              displayType: 'warn',
              callback: keep(() => model.interrupt(kernelId))
            }
          : null;
      case 'save':
        return {
          label: trans.__('Save'),
          caption: trans.__('Save the notebook now'),
          callback: keep(() => saveNotebooks(panels))
        };
      case 'panel':
        return {
          label: trans.__('Memory panel'),
          caption: trans.__('Open the Memory panel'),
          displayType: 'link',
          callback: keep(() => commands.execute(CommandIDs.openPanel))
        };
      case 'details': {
        const t = incident.termination;
        return t
          ? {
              label: trans.__('Details'),
              caption: trans.__(
                'What memguard found: the evidence and the memory timeline with its cells'
              ),
              displayType: 'link',
              callback: keep(() =>
                commands.execute(CommandIDs.openDetails, {
                  terminationKey: terminationKey(t)
                })
              )
            }
          : null;
      }
      case 'restart': {
        const panel = panels[0] ?? null;
        const range = panel
          ? (this.options.cells?.runRange(
              panel,
              incident.termination?.evidence.running_cell ?? null,
              incident.kernelId
            ) ?? null)
          : null;
        return {
          label: restartLabel(range, trans),
          caption: restartCaption(range, trans),
          displayType: 'accent',
          callback: keep(() =>
            panel && range
              ? this._restartAndRun(panel, range)
              : this._restart(incident, panels)
          )
        };
      }
      case 'stopIdle':
        return {
          label: trans.__('Stop idle notebooks…'),
          caption: trans.__(
            'Shut down the idle notebooks holding this GPU (asks first); their variables are lost'
          ),
          displayType: 'warn',
          callback: keep(() => this._stopIdle(incident))
        };
      case 'dismiss':
      default:
        return {
          label: trans.__('Dismiss'),
          caption: trans.__('Close this notice'),
          callback: () => undefined
        };
    }
  }

  /**
   * Restart the kernel and run the cells above the one that failed, with JupyterLab's own
   * command: the cell above the failing one is made the active one first.
   */
  private async _restartAndRun(
    panel: NotebookPanel,
    range: IRunRange
  ): Promise<void> {
    // A kernel memguard shut down is gone: JupyterLab then starts a new one, unasked.
    await this.options.refreshSessions();
    const notebook = panel.content;
    notebook.deselectAll();
    notebook.activeCellIndex = range.lastIndex;
    await this.options.commands.execute(RESTART_AND_RUN_TO_SELECTED, {
      [SemanticCommand.WIDGET]: panel.id,
      activate: true
    });
    await this.options.model.refresh();
  }

  /** A plain restart: the same kernel restarted, or a new one where it is gone. */
  private async _restart(
    incident: IIncident,
    panels: NotebookPanel[]
  ): Promise<void> {
    const { model } = this.options;
    for (const panel of panels) {
      const context: ISessionContext = panel.sessionContext;
      const kernel = context.session?.kernel;
      const alive =
        kernel &&
        kernel.status !== 'dead' &&
        model.kernels.has(kernel.id) &&
        model.incidentOf(kernel.id)?.phase !== 'ended';
      if (alive) {
        await context.restartKernel();
      } else {
        // Drop the session of the stopped kernel first, so a new one is started.
        await this.options.refreshSessions();
        await context.changeKernel({
          name:
            context.prevKernelName ||
            incident.termination?.kernel_name ||
            undefined
        });
      }
    }
    await model.refresh();
  }

  /** Stop the idle notebooks holding the GPU (asks first), then say what was done. */
  private async _stopIdle(incident: IIncident): Promise<void> {
    const { model, trans } = this.options;
    const ctx = { trans, units: model.units };
    // Only those still running and still idle now.
    const holders = stoppableHolders(incident.gpu?.holders ?? []).filter(
      h => model.kernel(h.kernel_id)?.execution_state !== 'busy'
    );
    if (!holders.length) {
      return;
    }
    const text = gpuStopConfirmation(holders, ctx);
    const result = await showDialog({
      title: text.title,
      body: text.body,
      buttons: [
        Dialog.cancelButton({ label: trans.__('Cancel') }),
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
        model
          .halt(h.kernel_id, 'stopped to free GPU memory for another notebook')
          .then(
            () => stopped.push(h),
            () => failed.push(h)
          )
      )
    );
    model.patchIncident(incident.key, { gpuStop: { stopped, failed } });
  }
}

/** A callback that keeps the notice open while it works (errors go to the console). */
function keep(work: () => unknown): (event: MouseEvent) => void {
  return event => {
    event.preventDefault();
    void Promise.resolve()
      .then(work)
      .catch(error => console.warn('memguard:', error));
  };
}
