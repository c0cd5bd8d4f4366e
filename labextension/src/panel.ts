/**
 * The "Memory" side panel: every kernel with a memory bar and sparkline, and the history of
 * terminations from the journal; an admin "Halt" button where the user may halt.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { haltKernel } from './api';
import {
  formatBytes,
  formatDuration,
  formatGpu,
  formatUsage,
  sparklinePoints
} from './format';
import { terminationNotice } from './messages';
import { MemoryModel } from './model';
import { IKernelInfo, ITermination } from './types';

const SVG = 'http://www.w3.org/2000/svg';

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

export class MemoryPanel extends Widget {
  constructor(private readonly model: MemoryModel) {
    super();
    this.id = 'jp-memguard-panel';
    this.addClass('jp-memguard-panel');
    this.title.caption = 'Kernel memory (memguard)';
    this.node.tabIndex = 0;
    model.changed.connect(this.update, this);
  }

  /** Scroll to and highlight one termination in the history. */
  highlight(termination: ITermination): void {
    this._highlight = termination.id ?? null;
    void this.model.refreshTerminations();
    this.update();
  }

  protected onAfterShow(): void {
    void this.model.refresh();
    void this.model.refreshTerminations();
  }

  protected onUpdateRequest(): void {
    if (this.isVisible) {
      this.render();
    }
  }

  render(): void {
    const model = this.model;
    const units = model.units;
    this.node.textContent = '';
    const header = element('div', 'jp-memguard-panel-header', 'Memory');
    this.node.appendChild(header);
    if (model.error) {
      this.node.appendChild(
        element('div', 'jp-memguard-error', `memguard: ${model.error}`)
      );
    }
    if (model.budget) {
      const b = model.budget;
      this.node.appendChild(
        element(
          'div',
          'jp-memguard-budget',
          `Budget: ${formatUsage(b.usage_bytes, b.limit_bytes, units)} (${b.limit_source.replace(/_/g, ' ')})`
        )
      );
    }
    const list = element('div', 'jp-memguard-kernels');
    const kernels = [...model.kernels.values()].sort(
      (a, b) => (b.memory?.rss_bytes ?? 0) - (a.memory?.rss_bytes ?? 0)
    );
    if (!kernels.length) {
      list.appendChild(
        element('div', 'jp-memguard-empty', 'No running kernels.')
      );
    }
    for (const kernel of kernels) {
      list.appendChild(this.kernelRow(kernel));
    }
    this.node.appendChild(element('h3', 'jp-memguard-section', 'Kernels'));
    this.node.appendChild(list);
    this.node.appendChild(element('h3', 'jp-memguard-section', 'Terminations'));
    const history = element('div', 'jp-memguard-terminations');
    if (!model.terminations.length) {
      history.appendChild(
        element('div', 'jp-memguard-empty', 'No kernel has ended yet.')
      );
    }
    for (const t of model.terminations) {
      const row = element(
        'div',
        `jp-memguard-termination jp-memguard-verdict-${t.verdict}`
      );
      if (t.id !== undefined && t.id === this._highlight) {
        row.classList.add('jp-memguard-highlight');
        setTimeout(() => row.scrollIntoView({ block: 'nearest' }), 0);
      }
      const when = t.ended_at
        ? new Date(t.ended_at * 1000).toLocaleString()
        : '';
      row.appendChild(
        element(
          'div',
          'jp-memguard-termination-title',
          `${t.verdict.replace(/_/g, ' ')} · ${t.confidence}`
        )
      );
      row.appendChild(
        element(
          'div',
          'jp-memguard-termination-path',
          `${t.path ?? t.kernel_id.slice(0, 8)} · ${when}`
        )
      );
      const notice = terminationNotice(t, units);
      row.appendChild(
        element(
          'div',
          'jp-memguard-termination-text',
          notice?.message ?? t.explanation
        )
      );
      history.appendChild(row);
    }
    this.node.appendChild(history);
  }

  private kernelRow(kernel: IKernelInfo): HTMLElement {
    const units = this.model.units;
    const row = element(
      'div',
      `jp-memguard-kernel jp-memguard-level-${kernel.level}`
    );
    row.dataset.kernelId = kernel.id;
    row.appendChild(
      element(
        'div',
        'jp-memguard-kernel-path',
        kernel.path ?? `${kernel.name} ${kernel.id.slice(0, 8)}`
      )
    );
    const rss = kernel.memory?.rss_bytes ?? null;
    const bar = element('div', 'jp-memguard-bar');
    const fill = element('div', 'jp-memguard-bar-fill');
    fill.style.width =
      rss !== null
        ? `${Math.min(100, (rss / kernel.limit_bytes) * 100).toFixed(1)}%`
        : '0%';
    bar.appendChild(fill);
    row.appendChild(bar);
    const figures =
      rss !== null
        ? formatUsage(rss, kernel.limit_bytes, units)
        : `n/a (${kernel.memory_unavailable_reason ?? 'not measured'})`;
    const children = kernel.memory?.children.length
      ? ` · ${kernel.memory.children.length} child processes`
      : '';
    const gpu = formatGpu(kernel.gpu, units);
    row.appendChild(
      element(
        'div',
        'jp-memguard-kernel-figures',
        `${figures} · peak ${formatBytes(kernel.memory?.peak_bytes, units)}${children}` +
          (gpu ? ` · ${gpu.lines.join(' · ')}` : '')
      )
    );
    row.appendChild(
      element(
        'div',
        'jp-memguard-kernel-state',
        `${kernel.execution_state} · idle ${formatDuration(kernel.idle_seconds)}${kernel.protected ? ' · protected' : ''}`
      )
    );
    const series = this.model.history.get(kernel.id) ?? [];
    const points = sparklinePoints(series, 160, 24, kernel.limit_bytes);
    if (points) {
      const svg = document.createElementNS(SVG, 'svg');
      svg.setAttribute('class', 'jp-memguard-sparkline');
      svg.setAttribute('viewBox', '0 0 160 24');
      svg.setAttribute('preserveAspectRatio', 'none');
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', points);
      svg.appendChild(line);
      row.appendChild(svg);
    }
    if (this.model.status?.can_halt) {
      const button = element(
        'button',
        'jp-mod-styled jp-mod-warn jp-memguard-halt',
        'Halt'
      );
      button.title =
        'Halt this kernel now (shut down, then kill); the journal records it';
      button.onclick = () => {
        button.disabled = true;
        haltKernel(kernel.id, 'halted from the Memory panel')
          .then(() =>
            Notification.info(`Halting kernel ${kernel.path ?? kernel.id}…`, {
              autoClose: 5000
            })
          )
          .catch(error =>
            Notification.error(`Could not halt the kernel: ${error.message}`)
          )
          .finally(() => void this.model.refresh());
      };
      row.appendChild(button);
    }
    return row;
  }

  private _highlight: number | null = null;
}
