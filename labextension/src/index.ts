/**
 * jupyter-memguard's JupyterLab plugins: the model (polling and events), the status-bar item,
 * the notices, the halted cells' notes and the Memory panel.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';

import { HaltedCells } from './cells';
import { MemoryModel } from './model';
import { Notices } from './notices';
import { MemoryPanel } from './panel';
import { MemoryStatus, StatusModel } from './statusItem';
import { CommandIDs, IMemGuardModel } from './tokens';
import { UnitsSetting } from './types';

/** The plugin whose id carries the settings (schema/plugin.json). */
const SETTINGS_ID = 'jupyter-memguard:plugin';
const DOMAIN = 'jupyter_memguard';

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
    const model = new MemoryModel();
    app.serviceManager.events.stream.connect((_, event) =>
      model.handleEvent(event)
    );
    // A kernel memguard shut down is gone from the server: tell JupyterLab at once, so it
    // stops showing it as idle and its Restart starts a new kernel.
    model.incidentChanged.connect((_, incident) => {
      if (incident.phase === 'ended') {
        void app.serviceManager.sessions.refreshRunning();
        void app.serviceManager.kernels.refreshRunning();
      }
    });
    if (settingRegistry) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        model.refreshSeconds =
          (settings.get('refreshInterval').composite as number) ?? 2;
        model.unitsSetting = ((settings.get('units').composite as string) ??
          'server') as UnitsSetting;
      };
      settingRegistry
        .load(SETTINGS_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(error =>
          console.warn('memguard: could not load settings', error)
        );
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
    const panel = new MemoryPanel(model, trans);
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
    settingRegistry
      .load(SETTINGS_ID)
      .then(settings => {
        const apply = (): void => {
          if (settings.get('showPanel').composite !== false) {
            attach();
          } else if (panel.isAttached) {
            panel.parent = null;
          }
        };
        apply();
        settings.changed.connect(apply);
      })
      .catch(() => attach());
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

/** The notices: one per kernel event, kept across reloads until dismissed. */
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
    const notices = new Notices({
      model,
      tracker,
      commands: app.commands,
      trans: (translator ?? nullTranslator).load(DOMAIN),
      jlTrans: (translator ?? nullTranslator).load('jupyterlab'),
      refreshSessions: () => app.serviceManager.sessions.refreshRunning()
    });
    void Promise.all([app.restored, model.ready]).then(() => notices.restore());
  }
};

/** The note in a halted cell's output, and the save after it. */
const cellsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-memguard:cells',
  description: 'Marks the cell memguard stopped, then saves the notebook.',
  autoStart: true,
  requires: [IMemGuardModel, INotebookTracker],
  optional: [ITranslator],
  activate: (
    app: JupyterFrontEnd,
    model: MemoryModel,
    tracker: INotebookTracker,
    translator: ITranslator | null
  ): void => {
    new HaltedCells(
      model,
      tracker,
      (translator ?? nullTranslator).load(DOMAIN)
    );
  }
};

export default [
  modelPlugin,
  panelPlugin,
  statusPlugin,
  noticesPlugin,
  cellsPlugin
];
export { IMemGuardModel } from './tokens';
