/**
 * The status-bar item: "Mem 1.2 / 4.0 GB" for the kernel of the notebook or console in focus.
 */
import { Widget } from '@lumino/widgets';

import { formatBytes, formatGpu, formatUsage } from './format';
import { MemoryModel } from './model';

export class MemoryStatus extends Widget {
  constructor(private readonly model: MemoryModel) {
    super();
    this.addClass('jp-memguard-status');
    this.addClass('jp-memguard-level-ok');
    this.node.title = 'Kernel memory (memguard)';
    model.changed.connect(this.update, this);
    this.update();
  }

  /** The kernel whose memory is shown (null: no kernel in focus). */
  set kernelId(value: string | null) {
    this._kernelId = value;
    this.update();
  }

  get kernelId(): string | null {
    return this._kernelId;
  }

  protected onUpdateRequest(): void {
    this.render();
  }

  render(): void {
    const kernel = this.model.kernel(this._kernelId);
    const units = this.model.units;
    let level = 'ok';
    if (!this._kernelId) {
      this.node.textContent = '';
      this.hide();
      return;
    }
    this.show();
    if (!kernel || !kernel.memory) {
      this.node.textContent = 'Mem n/a';
      this.node.title = kernel?.memory_unavailable_reason
        ? `Kernel memory not available: ${kernel.memory_unavailable_reason}`
        : this.model.error
          ? `Kernel memory not available: ${this.model.error}`
          : 'Kernel memory not measured yet';
    } else {
      const memory = kernel.memory;
      level = kernel.level;
      const gpu = formatGpu(kernel.gpu, units);
      this.node.textContent =
        `Mem ${formatUsage(memory.rss_bytes, kernel.limit_bytes, units)}` +
        (gpu ? ` · ${gpu.short}` : '');
      const lines = [
        `Kernel memory: ${formatBytes(memory.rss_bytes, units)} (peak ${formatBytes(memory.peak_bytes, units)})`,
        `Limit: ${formatBytes(kernel.limit_bytes, units)} from ${kernel.limit_source.replace(/_/g, ' ')}`,
        `Child processes: ${memory.children.length}`,
        `Growth: ${formatBytes(memory.growth_bytes_per_s, units)}/s`,
        ...(gpu?.lines ?? [])
      ];
      const series = this.model.history.get(kernel.id) ?? [];
      if (series.length > 1) {
        const recent = series
          .slice(-6)
          .map(([, bytes]) => formatBytes(bytes, units));
        lines.push(`Recent: ${recent.join(' → ')}`);
      }
      this.node.title = lines.join('\n');
    }
    for (const name of ['ok', 'warning', 'critical']) {
      this.node.classList.toggle(`jp-memguard-level-${name}`, name === level);
    }
  }

  private _kernelId: string | null = null;
}
