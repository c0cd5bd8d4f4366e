/**
 * jupyter-memguard's JupyterLab plugin: status-bar memory, notifications, the Memory panel.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ISessionContext } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { MemoryModel } from './model';
import { Notices } from './notices';
import { MemoryPanel } from './panel';
import { MemoryStatus } from './statusItem';
import { ITermination, Units } from './types';

const PLUGIN_ID = 'jupyter-memguard:plugin';
const OPEN_PANEL = 'memguard:open-panel';

const memoryIcon = new LabIcon({
  name: 'memguard:memory',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M5 6h14a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1zm1 2v7h12V8z"/>' +
    '<path d="M7 9h2v5H7zm4 0h2v5h-2zm4 0h2v5h-2zM6 18h2v2H6zm5 0h2v2h-2zm5 0h2v2h-2z"/></g></svg>'
});

/** The session context of a notebook or console widget, if it has one. */
function sessionOf(widget: Widget | null): ISessionContext | null {
  const candidate = (widget as { sessionContext?: ISessionContext } | null)
    ?.sessionContext;
  return candidate && typeof candidate === 'object' && 'session' in candidate
    ? candidate
    : null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Kernel memory in the status bar, OOM explanations and a memory panel.',
  autoStart: true,
  optional: [
    IStatusBar,
    INotebookTracker,
    ILabShell,
    ICommandPalette,
    ISettingRegistry
  ],
  activate: async (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    tracker: INotebookTracker | null,
    labShell: ILabShell | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null
  ): Promise<void> => {
    const model = new MemoryModel({ refreshSeconds: 2, units: 'decimal' });
    const panel = new MemoryPanel(model);
    panel.title.icon = memoryIcon;
    panel.title.label = '';

    let showPanel = true;
    const applySettings = (settings: ISettingRegistry.ISettings): void => {
      model.refreshSeconds =
        (settings.get('refreshInterval').composite as number) ?? 2;
      model.units = ((settings.get('units').composite as string) ??
        'decimal') as Units;
      showPanel = (settings.get('showPanel').composite as boolean) ?? true;
      if (showPanel && !panel.isAttached) {
        app.shell.add(panel, 'left', { rank: 600 });
      } else if (!showPanel && panel.isAttached) {
        panel.parent = null;
      }
      void model.refresh();
    };
    if (settingRegistry) {
      try {
        const settings = await settingRegistry.load(PLUGIN_ID);
        applySettings(settings);
        settings.changed.connect(applySettings);
      } catch (error) {
        console.warn('memguard: could not load settings', error);
      }
    }
    if (showPanel && !panel.isAttached) {
      app.shell.add(panel, 'left', { rank: 600 });
    }

    const openPanel = (termination?: ITermination): void => {
      if (!panel.isAttached) {
        app.shell.add(panel, 'left', { rank: 600 });
      }
      app.shell.activateById(panel.id);
      if (termination) {
        panel.highlight(termination);
      }
    };
    app.commands.addCommand(OPEN_PANEL, {
      label: 'Show Kernel Memory (memguard)',
      icon: memoryIcon,
      execute: () => openPanel()
    });
    palette?.addItem({ command: OPEN_PANEL, category: 'Kernel' });

    const notices = new Notices(model, tracker, openPanel);
    app.serviceManager.events.stream.connect((_, event) =>
      notices.handleEvent(event)
    );

    if (statusBar) {
      const item = new MemoryStatus(model);
      item.node.onclick = () => openPanel();
      let watched: ISessionContext | null = null;
      const follow = (): void => {
        const session = sessionOf(
          labShell?.currentWidget ?? app.shell.currentWidget
        );
        if (session !== watched) {
          watched?.kernelChanged.disconnect(follow);
          watched = session;
          watched?.kernelChanged.connect(follow);
        }
        item.kernelId = session?.session?.kernel?.id ?? null;
      };
      labShell?.currentChanged.connect(follow);
      follow();
      statusBar.registerStatusItem(PLUGIN_ID, {
        item,
        align: 'left',
        rank: 3,
        isActive: () => item.kernelId !== null
      });
    }
    model.start();
  }
};

export default plugin;
