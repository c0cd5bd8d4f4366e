/**
 * One kernel in the Memory panel: its notebook, a bar of its memory with the warn and stop
 * marks (the server's lines), its state, a sparkline, the buttons "Memory timeline" and
 * "Stop kernel…", and "What holds this kernel's memory?": its largest variables, asked of
 * the kernel (through the model) when the section is opened.
 */
import { Button } from '@jupyterlab/ui-components';
import * as React from 'react';

import { keepFigures } from '../format';
import { MemoryModel } from '../model/model';
import { IKernel } from '../model/types';
import { ITextContext } from '../texts/common';
import { variableKind, variableSize, variablesState } from '../texts/panel';
import {
  gpuText,
  kernelFacts,
  kernelStateText,
  linesText,
  usageText
} from '../texts/status';
import { kernelColour } from './breakdown';
import { MemoryChart } from './chart';

function percent(part: number, whole: number): string {
  return whole > 0
    ? `${Math.min(100, Math.max(0, (part / whole) * 100)).toFixed(1)}%`
    : '0%';
}

/** "What holds this kernel's memory?": its largest variables, on demand. */
function Variables(props: {
  kernel: IKernel;
  model: MemoryModel;
  ctx: ITextContext;
}): JSX.Element {
  const { kernel, model, ctx } = props;
  const { trans } = ctx;
  const [open, setOpen] = React.useState(false);
  const state = model.variables(kernel.id);
  const page = state?.page ?? null;
  const note = state?.loading
    ? trans.__('Asking the kernel…')
    : variablesState(page, state?.error ?? null, ctx);
  return (
    <details
      className="jp-memguard-variables"
      open={open}
      onToggle={event => {
        const isOpen = event.currentTarget.open;
        setOpen(isOpen);
        if (isOpen && !state) {
          void model.fetchVariables(kernel.id);
        }
      }}
    >
      <summary>{trans.__('What holds this kernel’s memory?')}</summary>
      {note ? (
        <p
          className="jp-memguard-variables-state"
          data-status={page?.status ?? (state?.error ? 'error' : 'loading')}
        >
          {note}
        </p>
      ) : null}
      {page?.status === 'ok' && page.variables.length ? (
        <table className="jp-memguard-variables-table">
          <thead>
            <tr>
              <th>{trans.__('Name')}</th>
              <th>{trans.__('Kind')}</th>
              <th>{trans.__('Size')}</th>
            </tr>
          </thead>
          <tbody>
            {page.variables.map(v => (
              <tr key={v.name} data-name={v.name}>
                <td>
                  <code>{v.name}</code>
                  {v.note ? (
                    <div className="jp-memguard-variables-note">{v.note}</div>
                  ) : null}
                </td>
                <td>{variableKind(v, trans)}</td>
                <td className="jp-memguard-variables-size">
                  {variableSize(v, ctx)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <Button
        className="jp-mod-styled jp-mod-reject jp-memguard-variables-refresh"
        small
        disabled={!!state?.loading}
        title={trans.__('Ask the kernel again')}
        onClick={() => void model.fetchVariables(kernel.id)}
      >
        {trans.__('Ask again')}
      </Button>
    </details>
  );
}

export function KernelRow(props: {
  kernel: IKernel;
  model: MemoryModel;
  ctx: ITextContext;
  openTimeline: (kernelId: string) => void;
  stop: (kernel: IKernel) => void;
}): JSX.Element {
  const { kernel, model, ctx } = props;
  const { trans } = ctx;
  const m = kernel.memory;
  const used = m?.used_bytes ?? 0;
  const facts = [kernelStateText(kernel, trans), ...kernelFacts(kernel, ctx)];
  if (kernel.protected) {
    facts.push(trans.__('protected: memguard never stops it'));
  }
  const gpu = gpuText(kernel.gpu, ctx);
  if (gpu) {
    facts.push(gpu.short);
  }
  const title = kernel.path ?? `${kernel.name} ${kernel.id.slice(0, 8)}`;
  return (
    <div
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
          ? keepFigures(
              trans.__('Uses %1', usageText(used, kernel.limit_bytes, ctx))
            )
          : trans.__(
              'Memory not available: %1',
              kernel.memory_unavailable_reason ?? trans.__('not measured yet')
            )}
      </div>
      <div className="jp-memguard-kernel-lines">
        {keepFigures(linesText(kernel, model.status?.settings, ctx))}
      </div>
      <div className="jp-memguard-kernel-state">
        {keepFigures(facts.join(' · '))}
      </div>
      <MemoryChart
        history={model.history.get(kernel.id) ?? []}
        limit={kernel.limit_bytes}
        warn={kernel.warn_bytes}
        halt={kernel.halt_bytes}
        width={200}
        height={28}
        className="jp-memguard-sparkline"
        label={trans.__('Recent memory of %1', title)}
      />
      <div className="jp-memguard-buttons">
        <Button
          className="jp-mod-styled jp-mod-reject jp-memguard-timeline-button"
          title={trans.__(
            'Open the memory timeline of this kernel, with its cells'
          )}
          onClick={() => props.openTimeline(kernel.id)}
        >
          {trans.__('Memory timeline')}
        </Button>
        {model.status?.can_halt && !kernel.protected ? (
          <Button
            className="jp-mod-styled jp-mod-warn jp-memguard-halt"
            title={trans.__(
              'Shut this kernel down now (asks first); its variables are lost'
            )}
            onClick={() => props.stop(kernel)}
          >
            {trans.__('Stop kernel…')}
          </Button>
        ) : null}
      </div>
      <Variables kernel={kernel} model={model} ctx={ctx} />
    </div>
  );
}
