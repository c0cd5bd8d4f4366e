/**
 * The tooltip of the status item, drawn by memguard (not a browser `title`): plain words
 * first (how much of its limit the kernel uses, the warn and stop lines, where the limit
 * comes from), then a chart of the last minutes with its lines labelled, the peak, the
 * growth rate only while the server says the kernel is growing, and its GPU memory.
 */
import { VDomRenderer } from '@jupyterlab/ui-components';
import * as React from 'react';

import { keepFigures } from '../format';
import { basename } from '../texts/common';
import {
  chartLineLabel,
  gpuText,
  kernelFacts,
  limitSourceText,
  linesText,
  usageText
} from '../texts/status';
import { MemoryChart } from './chart';
import type { StatusModel } from './statusItem';

export class MemoryTooltip extends VDomRenderer<StatusModel> {
  constructor(model: StatusModel) {
    super(model);
    this.addClass('jp-memguard-tooltip');
    this.node.setAttribute('role', 'tooltip');
  }

  protected render(): JSX.Element {
    const { memory, trans } = this.model;
    const view = this.model.view;
    const ctx = { trans, units: memory.units };
    const title = basename(view.path) ?? trans.__('Kernel memory');
    const footer = (
      <div className="jp-memguard-tooltip-hint">
        {trans.__('Click for the Memory panel.')}
      </div>
    );
    if (view.kind === 'stopped') {
      const words = view.termination?.words ?? null;
      return (
        <div>
          <div className="jp-memguard-tooltip-title">{title}</div>
          <div className="jp-memguard-tooltip-lead">
            {words?.headline || trans.__('The kernel has stopped.')}
          </div>
          <p>
            {keepFigures(
              words?.summary ||
                trans.__('Restart the kernel to go on; its variables are lost.')
            )}
          </p>
          {footer}
        </div>
      );
    }
    const kernel = view.kernel;
    const m = kernel?.memory ?? null;
    if (view.kind !== 'memory' || !kernel || !m) {
      return (
        <div>
          <div className="jp-memguard-tooltip-title">{title}</div>
          <p>{view.reason}</p>
          {footer}
        </div>
      );
    }
    const history = memory.history.get(kernel.id) ?? [];
    const gpu = gpuText(kernel.gpu, ctx);
    const facts = kernelFacts(kernel, ctx);
    return (
      <div>
        <div className="jp-memguard-tooltip-title">{title}</div>
        <div className="jp-memguard-tooltip-lead">
          {keepFigures(
            trans.__(
              'The kernel uses %1',
              usageText(m.used_bytes, kernel.limit_bytes, ctx)
            )
          )}
        </div>
        <p>{keepFigures(linesText(kernel, memory.status?.settings, ctx))}</p>
        <p>
          {trans.__(
            'Its limit is %1.',
            limitSourceText(kernel.limit_source, trans)
          )}
        </p>
        <MemoryChart
          history={history}
          limit={kernel.limit_bytes}
          warn={kernel.warn_bytes}
          halt={kernel.halt_bytes}
          width={296}
          height={64}
          lineLabel={(kind, bytes) => chartLineLabel(kind, bytes, ctx)}
          label={trans.__(
            'Memory of the last %1 samples against the limit, with the warn and stop lines',
            history.length
          )}
        />
        {facts.length ? (
          <div className="jp-memguard-tooltip-facts">
            {keepFigures(facts.join(' · '))}
          </div>
        ) : null}
        {gpu
          ? gpu.lines.map(line => (
              <div key={line} className="jp-memguard-tooltip-facts">
                {line}
              </div>
            ))
          : null}
        {footer}
      </div>
    );
  }
}
