/**
 * The Memory panel: the server's memory, every kernel with its memory against its limit
 * (with the warn and stop lines), and the recent kernel stops in plain words, with their
 * evidence in a Details view. "Stop kernel…" asks for confirmation first.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { VDomRenderer } from '@jupyterlab/ui-components';
import * as React from 'react';

import { haltKernel } from './api';
import { MemoryChart } from './chart';
import { formatBytes, formatRate, meaningfulGrowth } from './format';
import { terminationKey } from './incidents';
import {
  budgetText,
  evidenceLines,
  fractionsText,
  haltConfirmation,
  ITrans,
  kernelStateText,
  linesText,
  terminationHeadline,
  terminationSummary,
  usageText
} from './messages';
import { MemoryModel } from './model';
import { IKernelInfo, ITermination } from './types';

function when(t: ITermination): string {
  if (!t.ended_at) {
    return '';
  }
  const date = new Date(t.ended_at * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

function percent(part: number, whole: number): string {
  return whole > 0
    ? `${Math.min(100, (part / whole) * 100).toFixed(1)}%`
    : '0%';
}

export class MemoryPanel extends VDomRenderer<MemoryModel> {
  constructor(
    model: MemoryModel,
    private readonly trans: ITrans
  ) {
    super(model);
    this.id = 'jp-memguard-panel';
    this.addClass('jp-memguard-panel');
    this.title.label = trans.__('Memory');
    this.title.caption = trans.__('Kernel memory (memguard)');
    this.node.setAttribute('aria-label', trans.__('Kernel memory (memguard)'));
    this.node.tabIndex = 0;
  }

  /** Show one termination, its Details open, scrolled into view. */
  async highlight(key: string): Promise<void> {
    this._highlight = key;
    this._open.add(key);
    await this.model.refreshTerminations();
    this.update();
    await this.renderPromise;
    this.node
      .querySelector(`[data-termination-key="${CSS.escape(key)}"]`)
      ?.scrollIntoView({ block: 'nearest' });
  }

  protected onAfterShow(): void {
    void this.model.refresh();
    void this.model.refreshTerminations();
    this.update();
  }

  protected onUpdateRequest(msg: any): void {
    if (this.isVisible) {
      super.onUpdateRequest(msg);
    }
  }

  protected render(): JSX.Element {
    const { model, trans } = this;
    const ctx = { trans, units: model.units };
    const kernels = [...model.kernels.values()].sort(
      (a, b) => (b.memory?.rss_bytes ?? 0) - (a.memory?.rss_bytes ?? 0)
    );
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
          <p className="jp-memguard-budget">{budgetText(model.budget, ctx)}</p>
        ) : null}
        <p className="jp-memguard-explain">
          {fractionsText(model.status?.settings, trans)}
        </p>
        <h3 className="jp-memguard-section">{trans.__('Running kernels')}</h3>
        <div className="jp-memguard-kernels">
          {kernels.length ? (
            kernels.map(kernel => this._kernel(kernel))
          ) : (
            <div className="jp-memguard-empty">
              {trans.__('No kernel is running.')}
            </div>
          )}
        </div>
        <h3 className="jp-memguard-section">
          {trans.__('Recent kernel stops')}
        </h3>
        <div className="jp-memguard-terminations">
          {model.terminations.length ? (
            model.terminations.map(t => this._termination(t))
          ) : (
            <div className="jp-memguard-empty">
              {trans.__('No kernel has stopped yet.')}
            </div>
          )}
        </div>
      </div>
    );
  }

  private _kernel(kernel: IKernelInfo): JSX.Element {
    const { model, trans } = this;
    const units = model.units;
    const ctx = { trans, units };
    const m = kernel.memory;
    const history = model.history.get(kernel.id) ?? [];
    const growth = meaningfulGrowth(history, Date.now() / 1000);
    const facts = [kernelStateText(kernel, trans)];
    if (m) {
      facts.push(trans.__('peak %1', formatBytes(m.peak_bytes, units)));
      if (m.children.length) {
        facts.push(
          trans._n('%1 child process', '%1 child processes', m.children.length)
        );
      }
    }
    if (growth !== null) {
      facts.push(trans.__('growing %1', formatRate(growth, units)));
    }
    if (kernel.protected) {
      facts.push(trans.__('protected: memguard never stops it'));
    }
    if (kernel.gpu?.devices.length) {
      facts.push(trans.__('GPU %1', formatBytes(kernel.gpu.used_bytes, units)));
    }
    const title = kernel.path ?? `${kernel.name} ${kernel.id.slice(0, 8)}`;
    return (
      <div
        key={kernel.id}
        className={`jp-memguard-kernel jp-memguard-level-${kernel.level}`}
        data-kernel-id={kernel.id}
      >
        <div className="jp-memguard-kernel-title">{title}</div>
        <div
          className="jp-memguard-bar"
          role="meter"
          aria-label={trans.__('Memory of %1', title)}
          aria-valuemin={0}
          aria-valuemax={kernel.limit_bytes}
          aria-valuenow={m?.rss_bytes ?? 0}
        >
          <div
            className="jp-memguard-bar-fill"
            style={{ width: percent(m?.rss_bytes ?? 0, kernel.limit_bytes) }}
          />
          <div
            className="jp-memguard-bar-mark jp-memguard-bar-warn"
            style={{ left: percent(kernel.warn_bytes, kernel.limit_bytes) }}
          />
          <div
            className="jp-memguard-bar-mark jp-memguard-bar-halt"
            style={{ left: percent(kernel.halt_bytes, kernel.limit_bytes) }}
          />
        </div>
        <div className="jp-memguard-kernel-figures">
          {m
            ? trans.__(
                'Uses %1',
                usageText(m.rss_bytes, kernel.limit_bytes, ctx)
              )
            : trans.__(
                'Memory not available: %1',
                kernel.memory_unavailable_reason ?? trans.__('not measured yet')
              )}
        </div>
        <div className="jp-memguard-kernel-lines">
          {linesText(kernel, model.status?.settings, ctx)}
        </div>
        <div className="jp-memguard-kernel-state">{facts.join(' · ')}</div>
        <MemoryChart
          history={history}
          limit={kernel.limit_bytes}
          warn={kernel.warn_bytes}
          halt={kernel.halt_bytes}
          width={200}
          height={28}
          className="jp-memguard-sparkline"
          label={trans.__('Recent memory of %1', title)}
        />
        {model.status?.can_halt && !kernel.protected ? (
          <button
            className="jp-Button jp-mod-styled jp-mod-minimal jp-memguard-halt"
            title={trans.__(
              'Shut this kernel down now (asks first); its variables are lost'
            )}
            onClick={() => void this._halt(kernel)}
          >
            {trans.__('Stop kernel…')}
          </button>
        ) : null}
      </div>
    );
  }

  private _termination(t: ITermination): JSX.Element {
    const { model, trans } = this;
    const ctx = { trans, units: model.units };
    const key = terminationKey(t);
    const highlighted = key === this._highlight;
    const where = t.path ?? t.kernel_id.slice(0, 8);
    return (
      <div
        key={key}
        className={`jp-memguard-termination${highlighted ? ' jp-memguard-highlight' : ''}`}
        data-termination-key={key}
        data-verdict={t.verdict}
      >
        <div className="jp-memguard-termination-title">
          {terminationHeadline(t, trans)}
        </div>
        <div className="jp-memguard-termination-meta">
          {where}
          {t.ended_at ? ` · ${when(t)}` : ''}
        </div>
        <p className="jp-memguard-termination-text">
          {terminationSummary(t, ctx)}
        </p>
        {t.advice ? (
          <p className="jp-memguard-termination-advice">{t.advice}</p>
        ) : null}
        <details
          className="jp-memguard-details"
          open={this._open.has(key)}
          onToggle={event => {
            if ((event.currentTarget as HTMLDetailsElement).open) {
              this._open.add(key);
            } else {
              this._open.delete(key);
            }
          }}
        >
          <summary>{trans.__('Details')}</summary>
          <dl>
            {evidenceLines(t, ctx).map(([label, value]) => (
              <React.Fragment key={label}>
                <dt>{label}</dt>
                <dd>{value}</dd>
              </React.Fragment>
            ))}
          </dl>
        </details>
      </div>
    );
  }

  private async _halt(kernel: IKernelInfo): Promise<void> {
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
      await haltKernel(kernel.id, 'stopped from the Memory panel');
    } catch (error) {
      Notification.error(
        trans.__('Could not stop the kernel: %1', (error as Error).message)
      );
    }
    void this.model.refresh();
  }

  private _highlight: string | null = null;
  private _open = new Set<string>();
}
