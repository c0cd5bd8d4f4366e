/**
 * jupyter-memguard's JupyterLab plugins, each small: the model (one Poll, memguard's events),
 * the status-bar item, the notices and the watch on JupyterLab's sessions, the cells (the
 * stopped cell's note, memory badges), the Memory panel and the Details views.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';

import { Lifecycle } from './lifecycle';
import { terminationKey } from './model/incidents';
import { MemoryModel } from './model/model';
import { IStorage } from './model/persist';
import { ITermination, UnitsSetting } from './model/types';
import { CommandIDs, IMemGuardModel } from './tokens';
import { CellBadges } from './views/badges';
import { DEFAULT_BADGE_SETTINGS, IBadgeSettings } from './views/cellRecords';
import { DetailsViews } from './views/detailsTabs';
import { HaltedCells } from './views/haltedCells';
import { CellIndex } from './views/notebooks';
import { Notices } from './views/notices';
import { MemoryPanel } from './views/panel';
import { MemoryStatus, StatusModel } from './views/statusItem';

/** The plugin whose id carries the settings (schema/plugin.json). */
const SETTINGS_ID = 'jupyter-memguard:plugin';
const DOMAIN = 'jupyter_memguard';

/** The page's localStorage (null where it is disabled), and the keys of this server's data. */
function storage(): IStorage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}
const UNITS_SETTINGS: ReadonlyArray<UnitsSetting> = [
  'server',
  'binary',
  'decimal'
];
const STORAGE_KEY = `jupyter-memguard:v2:${PageConfig.getBaseUrl()}`;

/** The open notebooks' cells and their executions: shared by the notices and the badges. */
const cellIndexes = new WeakMap<INotebookTracker, CellIndex>();
function cellIndex(tracker: INotebookTracker): CellIndex {
  let index = cellIndexes.get(tracker);
  if (!index) {
    index = new CellIndex(tracker);
    cellIndexes.set(tracker, index);
  }
  return index;
}

/**
 * Calls `apply` with the extension's settings once they are loaded and again on each change;
 * `failed` (by default, a warning in the console) if they cannot be loaded.
 */
function followSettings(
  registry: ISettingRegistry,
  apply: (settings: ISettingRegistry.ISettings) => void,
  failed: (error: unknown) => void = error =>
    console.warn('memguard: could not load settings', error)
): void {
  registry
    .load(SETTINGS_ID)
    .then(settings => {
      apply(settings);
      settings.changed.connect(apply);
    })
    .catch(failed);
}

const memoryIcon = new LabIcon({
  name: 'memguard:memory',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M5 6h14a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1zm1 2v7h12V8z"/>' +
    '<path d="M7 9h2v5H7zm4 0h2v5h-2zm4 0h2v5h-2zM6 18h2v2H6zm5 0h2v2h-2zm5 0h2v2h-2z"/></g></svg>'
});

/** The model: polls the server, listens to memguard's events, holds the incidents. */
const modelPlugin: JupyterFrontEndPlugin<MemoryModel> = {
  id: SETTINGS_ID,
  description:
    "memguard's view of the kernels' memory and of what happened to them.",
  autoStart: true,
  provides: IMemGuardModel,
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    settingRegistry: ISettingRegistry | null
  ): MemoryModel => {
    const model = new MemoryModel({
      storage: storage(),
      storageKey: STORAGE_KEY
    });
    app.serviceManager.events.stream.connect((_, event) =>
      model.handleEvent(event)
    );
    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        const seconds = settings.get('refreshInterval').composite;
        model.refreshSeconds = typeof seconds === 'number' ? seconds : 2;
        const units = settings.get('units').composite;
        model.unitsSetting = UNITS_SETTINGS.find(u => u === units) ?? 'server';
      };
      followSettings(settingRegistry, apply);
    }
    model.start();
    return model;
  }
};

/** The Memory panel (left sidebar) and the command that opens it. */
const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-memguard:panel',
  description:
    'The Memory panel: every kernel, its limit, and the recent kernel stops.',
  autoStart: true,
  requires: [IMemGuardModel],
  optional: [ICommandPalette, ISettingRegistry, ITranslator, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    model: MemoryModel,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(DOMAIN);
    const panel = new MemoryPanel(model, trans, {
      openKernel: kernelId =>
        void app.commands.execute(CommandIDs.openDetails, { kernelId }),
      openTermination: t =>
        void app.commands.execute(CommandIDs.openDetails, {
          terminationKey: terminationKey(t)
        })
    });
    panel.title.icon = memoryIcon;
    const attach = (): void => {
      if (!panel.isAttached) {
        app.shell.add(panel, 'left', { rank: 600 });
      }
    };
    restorer?.add(panel, panel.id);
    app.commands.addCommand(CommandIDs.openPanel, {
      label: trans.__('Show Kernel Memory (memguard)'),
      caption: trans.__('Open the Memory panel'),
      icon: memoryIcon,
      execute: args => {
        attach();
        app.shell.activateById(panel.id);
        const key = args?.terminationKey;
        if (typeof key === 'string' && key) {
          void panel.highlight(key);
        }
      }
    });
    palette?.addItem({
      command: CommandIDs.openPanel,
      category: trans.__('Kernel')
    });
    if (!settingRegistry) {
      attach();
      return;
    }
    followSettings(
      settingRegistry,
      settings => {
        if (settings.get('showPanel').composite !== false) {
          attach();
        } else if (panel.isAttached) {
          panel.parent = null;
        }
      },
      () => attach()
    );
  }
};

/** The Details views: a kernel's memory timeline with its cells, a kernel stop's story. */
const detailsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-memguard:details',
  description:
    'Details of a kernel or a kernel stop, with a timeline of its memory and its cells.',
  autoStart: true,
  requires: [IMemGuardModel],
  optional: [ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: MemoryModel,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(DOMAIN);
    const views = new DetailsViews({
      memory: model,
      trans,
      icon: memoryIcon,
      show: widget => {
        if (!widget.isAttached) {
          // Beside the notebook; as a tab next to the other Details views once one is open.
          const other = Array.from(app.shell.widgets('main')).find(
            w => w !== widget && w.hasClass('jp-memguard-details')
          );
          app.shell.add(
            widget,
            'main',
            other
              ? { mode: 'tab-after', ref: other.id }
              : { mode: 'split-right' }
          );
        }
        app.shell.activateById(widget.id);
      }
    });
    const find = (key: string): ITermination | null =>
      model.incidents
        .map(i => i.termination)
        .find(t => t && terminationKey(t) === key) ??
      model.terminations.find(t => terminationKey(t) === key) ??
      null;
    app.commands.addCommand(CommandIDs.openDetails, {
      label: trans.__('Kernel memory details'),
      caption: trans.__(
        'The memory timeline of a kernel with its cells, or what happened to a kernel that stopped'
      ),
      icon: memoryIcon,
      execute: async args => {
        const number = (value: unknown): number | null =>
          typeof value === 'number' ? value : null;
        const focus = {
          msgId: typeof args.msgId === 'string' ? args.msgId : null,
          executionCount: number(args.executionCount)
        };
        if (typeof args.terminationKey === 'string' && args.terminationKey) {
          let t = find(args.terminationKey);
          if (!t) {
            await model.refreshTerminations(200);
            t = find(args.terminationKey);
          }
          if (t) {
            views.openTermination(t, focus);
          }
          return;
        }
        if (typeof args.kernelId === 'string' && args.kernelId) {
          views.openKernel(args.kernelId, focus);
        }
      }
    });
  }
};

/** The status-bar item and its tooltip. */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-memguard:status',
  description: "The memory of the focused notebook's kernel in the status bar.",
  autoStart: true,
  requires: [IMemGuardModel, IStatusBar],
  optional: [ILabShell, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: MemoryModel,
    statusBar: IStatusBar,
    labShell: ILabShell | null,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(DOMAIN);
    const statusModel = new StatusModel(model, trans);
    const item = new MemoryStatus(statusModel, () => {
      void app.commands.execute(CommandIDs.openPanel);
    });
    const follow = (): void => {
      statusModel.widget = labShell?.currentWidget ?? app.shell.currentWidget;
    };
    labShell?.currentChanged.connect(follow);
    follow();
    statusBar.registerStatusItem('jupyter-memguard:status', {
      item,
      align: 'left',
      rank: 3,
      isActive: () => statusModel.view.kind !== 'none',
      activeStateChanged: statusModel.stateChanged
    });
  }
};

/**
 * The notices (one per incident, kept across reloads until dismissed) and the watch on
 * JupyterLab's sessions and its "kernel appears to have died" dialog.
 */
const noticesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-memguard:notices',
  description: 'Notifications about kernels that run out of memory or stop.',
  autoStart: true,
  requires: [IMemGuardModel],
  optional: [INotebookTracker, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: MemoryModel,
    tracker: INotebookTracker | null,
    translator: ITranslator | null
  ): void => {
    const sessions = app.serviceManager.sessions;
    const notices = new Notices({
      model,
      tracker,
      cells: tracker ? cellIndex(tracker) : null,
      commands: app.commands,
      trans: (translator ?? nullTranslator).load(DOMAIN),
      refreshSessions: () => sessions.refreshRunning(),
      storage: storage(),
      storageKey: `${STORAGE_KEY}:notices`
    });
    new Lifecycle({
      model,
      tracker,
      jlTrans: (translator ?? nullTranslator).load('jupyterlab'),
      // A kernel memguard shut down is gone from the server: tell JupyterLab at once, so it
      // stops showing it as idle and its Restart starts a new kernel.
      refreshRunning: async () => {
        await Promise.all([
          sessions.refreshRunning(),
          app.serviceManager.kernels.refreshRunning()
        ]);
      }
    });
    void Promise.all([app.restored, model.ready]).then(() => notices.restore());
  }
};

/**
 * The notebook side: the note in a halted cell's output and the save after it; a badge by
 * each executed cell whose memory changed notably (it opens the timeline at that cell).
 */
const cellsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-memguard:cells',
  description:
    'Marks the cell memguard stopped, then saves the notebook; memory badges on cells.',
  autoStart: true,
  requires: [IMemGuardModel, INotebookTracker],
  optional: [ISettingRegistry, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: MemoryModel,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    translator: ITranslator | null
  ): void => {
    const trans = (translator ?? nullTranslator).load(DOMAIN);
    const index = cellIndex(tracker);
    new HaltedCells(model, tracker, index, trans);
    const badges = new CellBadges(model, tracker, index, trans, args =>
      app.commands.execute(CommandIDs.openDetails, { ...args })
    );
    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        const read = (name: string, fallback: number): number => {
          const value = settings.get(name).composite;
          return typeof value === 'number' && value >= 0 ? value : fallback;
        };
        const next: IBadgeSettings = {
          enabled: settings.get('cellBadges').composite !== false,
          thresholdMiB: read(
            'cellBadgeThresholdMiB',
            DEFAULT_BADGE_SETTINGS.thresholdMiB
          ),
          thresholdPercent: read(
            'cellBadgeThresholdPercent',
            DEFAULT_BADGE_SETTINGS.thresholdPercent
          )
        };
        badges.settings = next;
      };
      followSettings(settingRegistry, apply);
    }
  }
};

export default [
  modelPlugin,
  panelPlugin,
  detailsPlugin,
  statusPlugin,
  noticesPlugin,
  cellsPlugin
];
export { IMemGuardModel } from './tokens';
