/**
 * Notifications: a warning before a halt (and an autosave), a sticky explanation after a kernel
 * ends. Events come over jupyter_server's event bus; a kernel status of "dead" or
 * "autorestarting" is the fallback that asks the journal.
 */
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Event, Kernel } from '@jupyterlab/services';

import { getTerminations } from './api';
import { haltingText, terminationNotice, warningText } from './messages';
import { MemoryModel } from './model';
import { eventKind, ITermination } from './types';

export class Notices {
  constructor(
    private readonly model: MemoryModel,
    private readonly tracker: INotebookTracker | null,
    private readonly showDetails: (termination: ITermination) => void
  ) {
    tracker?.widgetAdded.connect((_, panel) => this.watch(panel));
    tracker?.forEach(panel => this.watch(panel));
  }

  /** Handle one event from the server's event bus. */
  handleEvent(event: Event.Emission): void {
    const kind = eventKind(event.schema_id);
    if (!kind) {
      return;
    }
    const data = event as Record<string, any>;
    switch (kind) {
      case 'memory_warning':
        Notification.warning(
          warningText(
            data.path ?? null,
            data.usage_bytes,
            data.limit_bytes,
            this.model.units
          ),
          { autoClose: 10000 }
        );
        break;
      case 'kernel_halting':
        Notification.warning(
          haltingText(data.path ?? null, Boolean(data.dry_run)),
          {
            autoClose: 10000
          }
        );
        if (!data.dry_run) {
          void this.saveNotebooksOf(data.kernel_id);
        }
        break;
      case 'kernel_terminated':
        this.notify({
          id: data.termination_id ?? null,
          kernel_id: data.kernel_id,
          kernel_name: data.kernel_name ?? null,
          path: data.path ?? null,
          verdict: data.verdict,
          confidence: data.confidence,
          explanation: data.explanation,
          evidence: data.evidence ?? {}
        });
        void this.model.refresh();
        void this.model.refreshTerminations();
        break;
    }
  }

  /** Save every open notebook whose kernel is this one. */
  async saveNotebooksOf(kernelId: string): Promise<number> {
    const saves: Promise<void>[] = [];
    this.tracker?.forEach(panel => {
      if (panel.sessionContext.session?.kernel?.id === kernelId) {
        saves.push(panel.context.save());
      }
    });
    await Promise.allSettled(saves);
    return saves.length;
  }

  /** Show the sticky notice for a termination (once per termination). */
  notify(termination: ITermination): void {
    const key =
      termination.id !== null && termination.id !== undefined
        ? `id:${termination.id}`
        : `${termination.kernel_id}:${termination.verdict}:${Math.round((termination.ended_at ?? Date.now() / 1000) / 30)}`;
    if (this._shown.has(key)) {
      return;
    }
    this._shown.add(key);
    const notice = terminationNotice(termination, this.model.units);
    if (!notice) {
      return;
    }
    const id: string = Notification.emit(notice.message, notice.type, {
      autoClose: notice.sticky ? false : 10000,
      actions: [
        {
          label: 'Details',
          caption: 'Show this termination in the Memory panel',
          callback: () => this.showDetails(termination)
        },
        {
          label: 'Dismiss',
          caption: 'Close this notification',
          callback: () => Notification.dismiss(id)
        }
      ]
    });
  }

  private watch(panel: NotebookPanel): void {
    panel.sessionContext.statusChanged.connect(
      (context, status: Kernel.Status) => {
        if (status !== 'dead' && status !== 'autorestarting') {
          return;
        }
        const kernelId = context.session?.kernel?.id;
        if (kernelId) {
          setTimeout(() => void this.askJournal(kernelId), 1500);
        }
      }
    );
  }

  private async askJournal(kernelId: string): Promise<void> {
    try {
      const since = Date.now() / 1000 - 120;
      const page = await getTerminations({
        kernel_id: kernelId,
        since,
        limit: 1
      });
      if (page.terminations.length) {
        this.notify(page.terminations[0]);
      }
    } catch {
      // memguard unreachable: JupyterLab's own message stands.
    }
  }

  private _shown = new Set<string>();
}
