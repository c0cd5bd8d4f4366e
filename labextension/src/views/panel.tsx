/**
 * The Memory panel (left sidebar): the server's memory and who holds it, what the warn and
 * stop lines mean, every kernel (with what holds its memory), each GPU, and what happened
 * to kernels lately — stops, and interrupts they survived — in the server's words, each
 * with its Details.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { Button, VDomRenderer } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { errorText } from '../api';
import { keepFigures } from '../format';
import { terminationKey } from '../model/incidents';
import { MemoryModel } from '../model/model';
import { IKernel, ITermination } from '../model/types';
import { ITextContext, ITrans } from '../texts/common';
import { budgetText, fractionsText, haltConfirmation } from '../texts/panel';
import { BreakdownSection, GpuSection } from './breakdownView';
import { KernelRow } from './kernelRow';

type Message = Parameters<Widget['processMessage']>[0];

/** What the panel's buttons open: a kernel's timeline, a record's Details. */
export interface IPanelActions {
  openKernel(kernelId: string): void;
  openTermination(t: ITermination): void;
}

function when(t: ITermination): string {
  if (!t.ended_at) {
    return '';
  }
  const date = new Date(t.ended_at * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

/** One record of the history: the server's headline, summary and advice. */
function Record(props: {
  t: ITermination;
  ctx: ITextContext;
  highlighted: boolean;
  open: () => void;
}): JSX.Element {
  const { t, ctx, highlighted } = props;
  const where = t.path ?? t.kernel_id.slice(0, 8);
  return (
    <div
      className={`jp-memguard-termination${highlighted ? ' jp-memguard-highlight' : ''}`}
      data-termination-key={terminationKey(t)}
      data-verdict={t.verdict}
      data-severity={t.words.severity}
      data-survived={t.survived ? 'true' : 'false'}
    >
      <div className="jp-memguard-termination-title">{t.words.headline}</div>
      <div className="jp-memguard-termination-meta">
        {where}
        {t.ended_at ? ` · ${when(t)}` : ''}
      </div>
      <p className="jp-memguard-termination-text">
        {keepFigures(t.words.summary)}
      </p>
      {t.words.advice ? (
        <p className="jp-memguard-termination-advice">
          {keepFigures(t.words.advice)}
        </p>
      ) : null}
      <Button
        className="jp-mod-styled jp-mod-reject jp-memguard-details-button"
        small
        title={ctx.trans.__(
          'What memguard found: the evidence and the memory timeline with its cells'
        )}
        onClick={props.open}
      >
        {ctx.trans.__('Details')}
      </Button>
    </div>
  );
}

export class MemoryPanel extends VDomRenderer<MemoryModel> {
  constructor(
    model: MemoryModel,
    private readonly trans: ITrans,
    private readonly actions: IPanelActions
  ) {
    super(model);
    this.id = 'jp-memguard-panel';
    this.addClass('jp-memguard-panel');
    this.title.label = trans.__('Memory');
    this.title.caption = trans.__('Kernel memory (memguard)');
    this.node.setAttribute('aria-label', trans.__('Kernel memory (memguard)'));
    this.node.tabIndex = 0;
  }

  /** Show one record, highlighted and scrolled into view. */
  async highlight(key: string): Promise<void> {
    this._highlight = key;
    await this.model.refreshTerminations();
    this.update();
    await this.renderPromise;
    this.node
      .querySelector(`[data-termination-key="${CSS.escape(key)}"]`)
      ?.scrollIntoView({ block: 'nearest' });
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._unwatch?.();
    this._unwatch = this.model.watchStatus();
    void this.model.refresh();
    void this.model.refreshTerminations();
    this.update();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopWatching();
  }

  protected onBeforeDetach(msg: Message): void {
    this._stopWatching();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this._stopWatching();
    super.dispose();
  }

  protected onUpdateRequest(msg: Message): void {
    if (this.isVisible) {
      super.onUpdateRequest(msg);
    }
  }

  protected render(): JSX.Element {
    const { model, trans } = this;
    const ctx = { trans, units: model.units };
    const kernels = [...model.kernels.values()].sort(
      (a, b) => (b.memory?.used_bytes ?? 0) - (a.memory?.used_bytes ?? 0)
    );
    const devices = model.status?.gpu_devices ?? [];
    const lines = fractionsText(model.status?.settings, trans);
    return (
      <div className="jp-memguard-panel-content">
        <h2 className="jp-memguard-panel-header">
          {trans.__('Kernel memory')}
        </h2>
        {model.error ? (
          <div className="jp-memguard-error">
            {trans.__(
              'memguard is not reachable (%1); the figures may be out of date.',
              model.error
            )}
          </div>
        ) : null}
        {model.budget ? (
          <p className="jp-memguard-budget">
            {keepFigures(budgetText(model.budget, ctx))}
          </p>
        ) : null}
        <BreakdownSection model={model} ctx={ctx} />
        {lines ? (
          <p className="jp-memguard-explain">{keepFigures(lines)}</p>
        ) : null}
        <h3 className="jp-memguard-section">{trans.__('Running kernels')}</h3>
        <div className="jp-memguard-kernels">
          {kernels.length ? (
            kernels.map(kernel => (
              <KernelRow
                key={kernel.id}
                kernel={kernel}
                model={model}
                ctx={ctx}
                openTimeline={id => this.actions.openKernel(id)}
                stop={k => void this._halt(k)}
              />
            ))
          ) : (
            <div className="jp-memguard-empty">
              {trans.__('No kernel is running.')}
            </div>
          )}
        </div>
        {devices.length ? (
          <>
            <h3 className="jp-memguard-section">{trans.__('GPUs')}</h3>
            <div className="jp-memguard-gpus">
              {devices.map(device => (
                <GpuSection
                  key={device.index}
                  device={device}
                  model={model}
                  ctx={ctx}
                />
              ))}
            </div>
          </>
        ) : null}
        <h3 className="jp-memguard-section">
          {trans.__('What happened to kernels')}
        </h3>
        <div className="jp-memguard-terminations">
          {model.terminations.length ? (
            model.terminations.map(t => (
              <Record
                key={terminationKey(t)}
                t={t}
                ctx={ctx}
                highlighted={terminationKey(t) === this._highlight}
                open={() => this.actions.openTermination(t)}
              />
            ))
          ) : (
            <div className="jp-memguard-empty">
              {trans.__('No kernel has stopped yet.')}
            </div>
          )}
        </div>
      </div>
    );
  }

  private _stopWatching(): void {
    this._unwatch?.();
    this._unwatch = null;
  }

  private async _halt(kernel: IKernel): Promise<void> {
    const { trans } = this;
    const text = haltConfirmation(kernel, { trans, units: this.model.units });
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
    try {
      await this.model.halt(kernel.id, 'stopped from the Memory panel');
    } catch (error) {
      Notification.error(
        trans.__('Could not stop the kernel: %1', errorText(error))
      );
    }
  }

  private _highlight: string | null = null;
  private _unwatch: (() => void) | null = null;
}
