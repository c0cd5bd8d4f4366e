/**
 * The Memory panel: the server's memory and who holds it (a stacked bar: each kernel, the
 * Jupyter server, terminals, other programs, file cache, shared memory, free space), each GPU
 * and the notebooks holding it, every kernel with its memory against its limit (with the warn
 * and stop lines), and the recent kernel stops in plain words. "Memory timeline" and
 * "Details" open a Details view; "Stop kernel…" asks for confirmation first.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { VDomRenderer } from '@jupyterlab/ui-components';
import * as React from 'react';

import { haltKernel } from './api';
import {
  breakdownBar,
  gpuBar,
  IBar,
  ISegment,
  kernelColour
} from './breakdown';
import { MemoryChart, segmentClass, StackedBar } from './chart';
import {
  basename,
  formatBytes,
  formatRate,
  meaningfulGrowth,
  usedBytes
} from './format';
import { terminationKey } from './incidents';
import {
  budgetText,
  fractionsText,
  gpuDeviceText,
  haltConfirmation,
  ITrans,
  kernelLabel,
  kernelStateText,
  linesText,
  memoryMethodText,
  otherProcessText,
  overcountedText,
  segmentHint,
  segmentLabel,
  terminationHeadline,
  terminationSummary,
  usageText
} from './messages';
import { MemoryModel } from './model';
import { IGpuDeviceStatus, IKernelInfo, ITermination } from './types';

/** What the panel's buttons open: a kernel's timeline, a kernel stop's Details. */
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

function percent(part: number, whole: number): string {
  return whole > 0
    ? `${Math.min(100, (part / whole) * 100).toFixed(1)}%`
    : '0%';
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

  /** Show one termination, highlighted and scrolled into view. */
  async highlight(key: string): Promise<void> {
    this._highlight = key;
    await this.model.refreshTerminations();
    this.update();
    await this.renderPromise;
    this.node
      .querySelector(`[data-termination-key="${CSS.escape(key)}"]`)
      ?.scrollIntoView({ block: 'nearest' });
  }

  protected onAfterShow(): void {
    this._unwatch?.();
    this._unwatch = this.model.watchStatus();
    void this.model.refresh();
    void this.model.refreshTerminations();
    this.update();
  }

  protected onAfterHide(): void {
    this._unwatch?.();
    this._unwatch = null;
  }

  protected onBeforeDetach(): void {
    this._unwatch?.();
    this._unwatch = null;
  }

  dispose(): void {
    this._unwatch?.();
    this._unwatch = null;
    super.dispose();
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
      (a, b) => usedBytes(b.memory) - usedBytes(a.memory)
    );
    const devices = model.status?.gpu_devices ?? [];
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
        {this._breakdown()}
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
        {devices.length ? (
          <>
            <h3 className="jp-memguard-section">{trans.__('GPUs')}</h3>
            <div className="jp-memguard-gpus">
              {devices.map(device => this._gpu(device))}
            </div>
          </>
        ) : null}
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

  /** Names of kernels in lists: the notebook's file name (its path when two share one). */
  private _kernelName(kernelId: string, fallbackPath?: string | null): string {
    const { model, trans } = this;
    const path = model.kernel(kernelId)?.path ?? fallbackPath ?? null;
    const name = basename(path);
    if (name && path) {
      const twins = [...model.kernels.values()].filter(
        k => k.id !== kernelId && basename(k.path) === name
      );
      return twins.length ? path : name;
    }
    return kernelLabel(path, kernelId, trans);
  }

  /** A legend under a stacked bar: each segment with its name and size. */
  private _legend(bar: IBar, name: (segment: ISegment) => string): JSX.Element {
    const { model, trans } = this;
    const ctx = { trans, units: model.units };
    return (
      <ul className="jp-memguard-legend">
        {bar.segments.map(segment => {
          const label = name(segment);
          const size = formatBytes(segment.bytes, model.units);
          const swatch = (
            <span className={`${segmentClass(segment)} jp-memguard-swatch`} />
          );
          const processes = segment.processes ?? [];
          if (segment.kind === 'others' && processes.length) {
            return (
              <li
                key={segment.key}
                className="jp-memguard-legend-item"
                data-kind={segment.kind}
              >
                <details
                  className="jp-memguard-others"
                  open={this._othersOpen}
                  onToggle={event => {
                    this._othersOpen = (
                      event.currentTarget as HTMLDetailsElement
                    ).open;
                  }}
                >
                  <summary title={segmentHint(segment, trans)}>
                    {swatch}
                    <span className="jp-memguard-legend-label">{label}</span>
                    <span className="jp-memguard-legend-size">{size}</span>
                  </summary>
                  <ul>
                    {processes.map(p => (
                      <li key={p.pid}>{otherProcessText(p, ctx, 48)}</li>
                    ))}
                  </ul>
                </details>
              </li>
            );
          }
          return (
            <li
              key={segment.key}
              className="jp-memguard-legend-item"
              data-kind={segment.kind}
              title={segmentHint(segment, trans)}
            >
              {swatch}
              <span className="jp-memguard-legend-label">{label}</span>
              <span className="jp-memguard-legend-size">{size}</span>
            </li>
          );
        })}
      </ul>
    );
  }

  /** Who holds the server's memory: a stacked bar of the budget and its legend. */
  private _breakdown(): JSX.Element | null {
    const { model, trans } = this;
    const status = model.status;
    if (!status) {
      return null;
    }
    const breakdown = status.breakdown;
    const ctx = { trans, units: model.units };
    if (!breakdown) {
      return (
        <div className="jp-memguard-breakdown jp-memguard-empty">
          {trans.__('Working out who holds the memory…')}
        </div>
      );
    }
    const limit = model.budget?.limit_bytes ?? status.budget.limit_bytes;
    const bar = breakdownBar(breakdown, limit, id => kernelColour(id));
    const name = (segment: ISegment): string => {
      const label = segmentLabel(segment, trans, id => this._kernelName(id));
      return segment.kind === 'others' && segment.count
        ? trans.__('%1 (%2)', label, segment.count)
        : label;
    };
    const describe = (segment: ISegment): string => {
      const lines = [
        `${name(segment)}: ${formatBytes(segment.bytes, model.units)}`,
        segmentHint(segment, trans)
      ];
      for (const p of (segment.processes ?? []).slice(0, 3)) {
        lines.push(otherProcessText(p, ctx, 60));
      }
      return lines.join('\n');
    };
    const note = overcountedText(bar, ctx);
    return (
      <div className="jp-memguard-breakdown">
        <h3 className="jp-memguard-section">
          {trans.__('Who holds the memory')}
        </h3>
        <StackedBar
          bar={bar}
          describe={describe}
          label={bar.segments
            .map(s => `${name(s)} ${formatBytes(s.bytes, model.units)}`)
            .join(', ')}
          className="jp-memguard-breakdown-bar"
        />
        {this._legend(bar, name)}
        {note ? <p className="jp-memguard-note">{note}</p> : null}
      </div>
    );
  }

  /** One GPU: used / total, and which notebooks hold how much. */
  private _gpu(device: IGpuDeviceStatus): JSX.Element {
    const { model, trans } = this;
    const ctx = { trans, units: model.units };
    const bar = gpuBar(device, id => kernelColour(id));
    const paths = new Map(device.kernels.map(k => [k.kernel_id, k.path]));
    const name = (segment: ISegment): string =>
      segmentLabel(segment, trans, id => this._kernelName(id, paths.get(id)));
    return (
      <div
        key={device.index}
        className="jp-memguard-gpu"
        data-gpu-index={device.index}
      >
        <div className="jp-memguard-kernel-title">
          {gpuDeviceText(device, ctx)}
        </div>
        <StackedBar
          bar={bar}
          describe={segment =>
            `${name(segment)}: ${formatBytes(segment.bytes, model.units)}`
          }
          label={gpuDeviceText(device, ctx)}
          className="jp-memguard-gpu-bar"
        />
        {this._legend(bar, name)}
      </div>
    );
  }

  private _kernel(kernel: IKernelInfo): JSX.Element {
    const { model, trans } = this;
    const units = model.units;
    const ctx = { trans, units };
    const m = kernel.memory;
    const used = usedBytes(m);
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
    const method = m ? memoryMethodText(m, ctx) : null;
    const title = kernel.path ?? `${kernel.name} ${kernel.id.slice(0, 8)}`;
    return (
      <div
        key={kernel.id}
        className={`jp-memguard-kernel jp-memguard-level-${kernel.level}`}
        data-kernel-id={kernel.id}
      >
        <div className="jp-memguard-kernel-title">
          <span
            className={`jp-memguard-seg jp-memguard-seg-kernel jp-memguard-seg-colour${kernelColour(kernel.id)} jp-memguard-swatch`}
          />
          {title}
        </div>
        <div
          className="jp-memguard-bar"
          role="meter"
          aria-label={trans.__('Memory of %1', title)}
          aria-valuemin={0}
          aria-valuemax={kernel.limit_bytes}
          aria-valuenow={used}
        >
          <div
            className="jp-memguard-bar-fill"
            style={{ width: percent(used, kernel.limit_bytes) }}
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
            ? trans.__('Uses %1', usageText(used, kernel.limit_bytes, ctx))
            : trans.__(
                'Memory not available: %1',
                kernel.memory_unavailable_reason ?? trans.__('not measured yet')
              )}
        </div>
        {method ? (
          <div className="jp-memguard-kernel-method">{method}</div>
        ) : null}
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
        <div className="jp-memguard-buttons">
          <button
            className="jp-Button jp-mod-styled jp-mod-minimal jp-memguard-timeline-button"
            title={trans.__(
              'Open the memory timeline of this kernel, with its cells'
            )}
            onClick={() => this.actions.openKernel(kernel.id)}
          >
            {trans.__('Memory timeline')}
          </button>
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
        <button
          className="jp-Button jp-mod-styled jp-mod-minimal jp-memguard-details-button"
          title={trans.__(
            'What memguard found: the evidence and the memory timeline with its cells'
          )}
          onClick={() => this.actions.openTermination(t)}
        >
          {trans.__('Details')}
        </button>
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
  private _othersOpen = false;
  private _unwatch: (() => void) | null = null;
}
