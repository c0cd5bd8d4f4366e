/**
 * The Memory panel's "who holds the memory": a stacked bar of the whole limit (each kernel,
 * the Jupyter server, each terminal, the kernels a stopped server left running, other
 * programs, file cache, shared memory, free space) with a legend in plain words; and each
 * GPU with the notebooks that hold it.
 */
import * as React from 'react';

import { formatBytes } from '../format';
import { MemoryModel } from '../model/model';
import { IGpuDeviceStatus } from '../model/types';
import { basename, ITextContext, kernelLabel } from '../texts/common';
import {
  gpuDeviceText,
  orphanText,
  otherProcessText,
  segmentHint,
  segmentLabel
} from '../texts/panel';
import {
  breakdownBar,
  gpuBar,
  IBar,
  ISegment,
  kernelColour
} from './breakdown';
import { segmentClass, StackedBar } from './chart';

/** A kernel's name in lists: its notebook's file name (its path when two share one). */
export function kernelName(
  model: MemoryModel,
  ctx: ITextContext,
  kernelId: string,
  fallbackPath?: string | null
): string {
  const path = model.kernel(kernelId)?.path ?? fallbackPath ?? null;
  const name = basename(path);
  if (name && path) {
    const twins = [...model.kernels.values()].filter(
      k => k.id !== kernelId && basename(k.path) === name
    );
    return twins.length ? path : name;
  }
  return kernelLabel(path, kernelId, ctx.trans);
}

/** The lines under an expandable legend entry (other programs, orphaned kernels). */
function entries(
  segment: ISegment,
  model: MemoryModel,
  ctx: ITextContext
): string[] {
  if (segment.kind === 'others') {
    return (segment.processes ?? []).map(p => otherProcessText(p, ctx, 48));
  }
  if (segment.kind === 'orphans') {
    const paths = new Map(
      (model.status?.orphans ?? []).map(o => [o.kernel_id, o.path])
    );
    return (segment.holders ?? []).map(h =>
      orphanText(
        {
          name: kernelLabel(paths.get(h.key), h.key, ctx.trans),
          pids: h.pids,
          bytes: h.bytes
        },
        ctx
      )
    );
  }
  return [];
}

/** A legend under a stacked bar: each segment with its name and size. */
function Legend(props: {
  bar: IBar;
  name: (segment: ISegment) => string;
  model: MemoryModel;
  ctx: ITextContext;
}): JSX.Element {
  const { bar, name, model, ctx } = props;
  const [open, setOpen] = React.useState<Record<string, boolean>>({});
  return (
    <ul className="jp-memguard-legend">
      {bar.segments.map(segment => {
        const label = name(segment);
        const size = formatBytes(segment.bytes, ctx.units);
        const hint = segmentHint(segment.kind, ctx.trans);
        const head = (
          <>
            <span className={`${segmentClass(segment)} jp-memguard-swatch`} />
            <span className="jp-memguard-legend-label">{label}</span>
            <span className="jp-memguard-legend-size">{size}</span>
          </>
        );
        const lines = entries(segment, model, ctx);
        return (
          <li
            key={segment.key}
            className="jp-memguard-legend-item"
            data-kind={segment.kind}
            title={lines.length ? undefined : hint}
          >
            {lines.length ? (
              <details
                className="jp-memguard-others"
                open={!!open[segment.key]}
                onToggle={event => {
                  const isOpen = event.currentTarget.open;
                  setOpen(state => ({ ...state, [segment.key]: isOpen }));
                }}
              >
                <summary title={hint}>{head}</summary>
                <ul>
                  {lines.map(line => (
                    <li key={line}>{line}</li>
                  ))}
                </ul>
              </details>
            ) : (
              head
            )}
          </li>
        );
      })}
    </ul>
  );
}

/** Who holds the server's memory: the bar of the budget and its legend. */
export function BreakdownSection(props: {
  model: MemoryModel;
  ctx: ITextContext;
}): JSX.Element | null {
  const { model, ctx } = props;
  const { trans, units } = ctx;
  const status = model.status;
  if (!status) {
    return null;
  }
  if (!status.breakdown) {
    return (
      <div className="jp-memguard-breakdown jp-memguard-empty">
        {trans.__('Working out who holds the memory…')}
      </div>
    );
  }
  const limit = model.budget?.limit_bytes ?? status.budget.limit_bytes;
  const bar = breakdownBar(status.breakdown, limit, id => kernelColour(id));
  const name = (segment: ISegment): string => {
    const label = segmentLabel(segment, trans, id =>
      kernelName(model, ctx, id)
    );
    return (segment.kind === 'others' || segment.kind === 'orphans') &&
      segment.count
      ? trans.__('%1 (%2)', label, segment.count)
      : label;
  };
  const describe = (segment: ISegment): string =>
    [
      `${name(segment)}: ${formatBytes(segment.bytes, units)}`,
      segmentHint(segment.kind, trans),
      ...entries(segment, model, ctx).slice(0, 3)
    ].join('\n');
  return (
    <div className="jp-memguard-breakdown">
      <h3 className="jp-memguard-section">
        {trans.__('Who holds the memory')}
      </h3>
      <StackedBar
        bar={bar}
        describe={describe}
        label={bar.segments
          .map(s => `${name(s)} ${formatBytes(s.bytes, units)}`)
          .join(', ')}
        className="jp-memguard-breakdown-bar"
      />
      <Legend bar={bar} name={name} model={model} ctx={ctx} />
    </div>
  );
}

/** One GPU: used / total, and which notebooks hold how much. */
export function GpuSection(props: {
  device: IGpuDeviceStatus;
  model: MemoryModel;
  ctx: ITextContext;
}): JSX.Element {
  const { device, model, ctx } = props;
  const bar = gpuBar(device, id => kernelColour(id));
  const paths = new Map(device.kernels.map(k => [k.kernel_id, k.path]));
  const name = (segment: ISegment): string =>
    segmentLabel(segment, ctx.trans, id =>
      kernelName(model, ctx, id, paths.get(id))
    );
  return (
    <div className="jp-memguard-gpu" data-gpu-index={device.index}>
      <div className="jp-memguard-kernel-title">
        {gpuDeviceText(device, ctx)}
      </div>
      <StackedBar
        bar={bar}
        describe={segment =>
          `${name(segment)}: ${formatBytes(segment.bytes, ctx.units)}`
        }
        label={gpuDeviceText(device, ctx)}
        className="jp-memguard-gpu-bar"
      />
      <Legend bar={bar} name={name} model={model} ctx={ctx} />
    </div>
  );
}
