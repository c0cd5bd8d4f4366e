/**
 * The main-area tabs of Details views: one per running kernel and one per record, opened
 * again (and focused on a cell) when asked twice.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { terminationKey } from '../model/incidents';
import { MemoryModel } from '../model/model';
import { ITermination } from '../model/types';
import { basename, ITrans, kernelLabel } from '../texts/common';
import { DetailsView } from './details';
import { DetailsModel, DetailsTarget, ICellFocus } from './detailsModel';

export class DetailsViews {
  constructor(
    private readonly options: {
      memory: MemoryModel;
      trans: ITrans;
      icon: LabIcon;
      /** Add a widget to the main area and show it. */
      show: (widget: Widget) => void;
    }
  ) {}

  /** Open (or show again) the view of a running kernel, at a cell if given. */
  openKernel(kernelId: string, focus: ICellFocus | null = null): void {
    this._open(`k-${kernelId}`, { kind: 'kernel', kernelId }, focus);
  }

  /** Open (or show again) the view of a record. */
  openTermination(t: ITermination, focus: ICellFocus | null = null): void {
    this._open(
      `t-${terminationKey(t)}`,
      { kind: 'termination', termination: t },
      focus
    );
  }

  private _open(
    key: string,
    target: DetailsTarget,
    focus: ICellFocus | null
  ): void {
    const { memory, trans } = this.options;
    let widget = this._widgets.get(key);
    if (!widget || widget.isDisposed) {
      const model = new DetailsModel(memory, target);
      widget = new MainAreaWidget({ content: new DetailsView(model, trans) });
      widget.id = `jp-memguard-details-${key.replace(/[^\w-]/g, '_')}`;
      widget.addClass('jp-memguard-details');
      const path =
        target.kind === 'kernel'
          ? memory.kernel(target.kernelId)?.path
          : target.termination.path;
      const kernelId =
        target.kind === 'kernel'
          ? target.kernelId
          : target.termination.kernel_id;
      const name = kernelLabel(path, kernelId, trans);
      if (target.kind === 'kernel') {
        widget.title.label = trans.__('Memory: %1', name);
        widget.title.caption = trans.__('Memory timeline of %1', path ?? name);
      } else {
        widget.title.label = trans.__('Details: %1', name);
        widget.title.caption = `${target.termination.words.headline} (${basename(path) ?? name})`;
      }
      widget.title.icon = this.options.icon;
      widget.title.closable = true;
      const stored = widget;
      this._widgets.set(key, stored);
      stored.disposed.connect(() => {
        model.dispose();
        if (this._widgets.get(key) === stored) {
          this._widgets.delete(key);
        }
      });
    }
    widget.content.model.focus(focus);
    this.options.show(widget);
  }

  private _widgets = new Map<string, MainAreaWidget<DetailsView>>();
}
