/**
 * The status-bar item: "Mem 54 / 600 MiB" for the kernel of the notebook or console in
 * focus, "Kernel stopped" once it has ended, and a tooltip of our own (drawn on hover or
 * focus) with the limit, the warn and stop lines and a chart of recent memory.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { VDomModel, VDomRenderer } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { MemoryChart } from './chart';
import {
  basename,
  formatBytes,
  formatGpu,
  formatRate,
  meaningfulGrowth,
  usedBytes
} from './format';
import {
  ITrans,
  limitSourceText,
  linesText,
  memoryMethodText,
  statusText,
  terminationHeadline,
  terminationSummary,
  usageText
} from './messages';
import { MemoryModel } from './model';
import { IKernelInfo, ITermination } from './types';

/** The session context of a notebook or console widget, if it has one. */
export function sessionOf(widget: Widget | null): ISessionContext | null {
  const candidate = (widget as { sessionContext?: ISessionContext } | null)
    ?.sessionContext;
  return candidate && typeof candidate === 'object' && 'session' in candidate
    ? candidate
    : null;
}

export type StatusKind = 'none' | 'memory' | 'pending' | 'na' | 'stopped';

/** What the status item shows now. */
export interface IStatusView {
  kind: StatusKind;
  text: string;
  level: 'ok' | 'warning' | 'critical' | 'stopped';
  kernel: IKernelInfo | null;
  termination: ITermination | null;
  path: string | null;
  reason: string | null;
}

/** Follows the widget in focus and derives what the status item says about its kernel. */
export class StatusModel extends VDomModel {
  constructor(
    readonly memory: MemoryModel,
    readonly trans: ITrans
  ) {
    super();
    memory.stateChanged.connect(this._changed, this);
  }

  /** The widget in focus (a notebook or a console, else nothing is shown). */
  set widget(widget: Widget | null) {
    const session = sessionOf(widget);
    if (session === this._session) {
      return;
    }
    if (this._session) {
      this._session.statusChanged.disconnect(this._changed, this);
      this._session.kernelChanged.disconnect(this._changed, this);
    }
    this._session = session;
    if (session) {
      session.statusChanged.connect(this._changed, this);
      session.kernelChanged.connect(this._changed, this);
    }
    this._changed();
  }

  get session(): ISessionContext | null {
    return this._session;
  }

  /** The kernel id shown (the current one, else the last one this session had). */
  get kernelId(): string | null {
    const session = this._session;
    if (!session) {
      return null;
    }
    return session.session?.kernel?.id ?? this._last.get(session) ?? null;
  }

  get view(): IStatusView {
    const { memory, trans } = this;
    const session = this._session;
    const empty: IStatusView = {
      kind: 'none',
      text: '',
      level: 'ok',
      kernel: null,
      termination: null,
      path: null,
      reason: null
    };
    if (!session || session.isDisposed) {
      return empty;
    }
    const liveId = session.session?.kernel?.id ?? null;
    const kernelId = this.kernelId;
    const path = session.session?.path ?? session.path ?? null;
    const info = memory.kernel(liveId);
    const incident = memory.incidentOf(kernelId);
    const status = session.kernelDisplayStatus;
    const ended =
      incident && incident.phase === 'ended' && incident.termination
        ? incident.termination
        : null;
    if (info && info.memory && !ended) {
      return {
        ...empty,
        kind: 'memory',
        text: statusText(
          usedBytes(info.memory),
          info.limit_bytes,
          memory.units
        ),
        level: info.level,
        kernel: info,
        path
      };
    }
    if (ended || status === 'dead' || (!liveId && kernelId)) {
      return {
        ...empty,
        kind: 'stopped',
        text: trans.__('Kernel stopped'),
        level: 'stopped',
        termination: ended ?? memory.ended(kernelId),
        path
      };
    }
    if (!liveId) {
      return {
        ...empty,
        kind: 'na',
        text: trans.__('No kernel'),
        path,
        reason: trans.__('This document has no kernel.')
      };
    }
    if (info && !info.memory) {
      return {
        ...empty,
        kind: 'na',
        text: trans.__('Mem n/a'),
        kernel: info,
        path,
        reason:
          info.memory_unavailable_reason ??
          trans.__('memguard cannot measure this kernel.')
      };
    }
    if (memory.error) {
      return {
        ...empty,
        kind: 'na',
        text: trans.__('Mem n/a'),
        path,
        reason: trans.__('memguard is not reachable: %1', memory.error)
      };
    }
    return {
      ...empty,
      kind: 'pending',
      text: trans.__('Mem …'),
      path,
      reason: trans.__('Measuring the kernel’s memory…')
    };
  }

  private _changed(): void {
    const session = this._session;
    const id = session?.session?.kernel?.id;
    if (session && id) {
      this._last.set(session, id);
    }
    this.stateChanged.emit();
  }

  private _session: ISessionContext | null = null;
  private _last = new WeakMap<ISessionContext, string>();
}

/** The status-bar item. */
export class MemoryStatus extends VDomRenderer<StatusModel> {
  constructor(model: StatusModel, onOpen: () => void) {
    super(model);
    this._onOpen = onOpen;
    this.addClass('jp-memguard-status');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'button');
    this._tooltip = new MemoryTooltip(model);
    this.node.addEventListener('mouseenter', () => this._showTooltip());
    this.node.addEventListener('mouseleave', () => this._hideTooltip());
    this.node.addEventListener('focus', () => this._showTooltip());
    this.node.addEventListener('blur', () => this._hideTooltip(0));
    this.node.addEventListener('click', () => {
      this._hideTooltip(0);
      this._onOpen();
    });
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this._onOpen();
      } else if (event.key === 'Escape') {
        this._hideTooltip(0);
      }
    });
    this._tooltip.node.addEventListener('mouseenter', () => this._cancelHide());
    this._tooltip.node.addEventListener('mouseleave', () =>
      this._hideTooltip()
    );
  }

  dispose(): void {
    this._tooltip.dispose();
    super.dispose();
  }

  protected render(): JSX.Element {
    const view = this.model.view;
    for (const level of ['ok', 'warning', 'critical', 'stopped']) {
      this.toggleClass(`jp-memguard-level-${level}`, view.level === level);
    }
    this.node.setAttribute(
      'aria-label',
      this.model.trans.__(
        'Kernel memory: %1. Open the Memory panel.',
        view.text
      )
    );
    if (this._tooltip.isAttached) {
      this._place();
    }
    const gpu =
      view.kind === 'memory' && view.kernel
        ? formatGpu(view.kernel.gpu, this.model.memory.units)
        : null;
    return (
      <span className="jp-memguard-status-text">
        {view.text}
        {gpu ? ` · ${gpu.short}` : ''}
      </span>
    );
  }

  private _showTooltip(): void {
    this._cancelHide();
    if (this._tooltip.isAttached || this.model.view.kind === 'none') {
      return;
    }
    Widget.attach(this._tooltip, document.body);
    this._place();
    const kernelId = this.model.view.kernel?.id;
    if (kernelId) {
      void this.model.memory.fetchHistory(kernelId);
    }
  }

  private _place(): void {
    const rect = this.node.getBoundingClientRect();
    const style = this._tooltip.node.style;
    style.bottom = `${Math.max(0, window.innerHeight - rect.top + 4)}px`;
    const width = this._tooltip.node.offsetWidth || 320;
    style.left = `${Math.max(4, Math.min(rect.left, window.innerWidth - width - 4))}px`;
  }

  private _hideTooltip(delay = 200): void {
    this._cancelHide();
    this._hideTimer = setTimeout(() => {
      if (this._tooltip.isAttached) {
        Widget.detach(this._tooltip);
      }
    }, delay);
  }

  private _cancelHide(): void {
    if (this._hideTimer) {
      clearTimeout(this._hideTimer);
      this._hideTimer = null;
    }
  }

  private _tooltip: MemoryTooltip;
  private _onOpen: () => void;
  private _hideTimer: ReturnType<typeof setTimeout> | null = null;
}

/** The tooltip of the status item: plain words first, then figures and a chart. */
export class MemoryTooltip extends VDomRenderer<StatusModel> {
  constructor(model: StatusModel) {
    super(model);
    this.addClass('jp-memguard-tooltip');
    this.node.setAttribute('role', 'tooltip');
  }

  protected render(): JSX.Element {
    const { memory, trans } = this.model;
    const view = this.model.view;
    const units = memory.units;
    const ctx = { trans, units };
    const title = basename(view.path) ?? trans.__('Kernel memory');
    const footer = (
      <div className="jp-memguard-tooltip-hint">
        {trans.__('Click for the Memory panel.')}
      </div>
    );
    if (view.kind === 'stopped') {
      const t = view.termination;
      return (
        <div>
          <div className="jp-memguard-tooltip-title">{title}</div>
          <div className="jp-memguard-tooltip-lead">
            {t
              ? terminationHeadline(t, trans)
              : trans.__('The kernel has stopped.')}
          </div>
          <p>
            {t
              ? terminationSummary(t, ctx)
              : trans.__(
                  'Restart the kernel to go on; its variables are lost.'
                )}
          </p>
          {footer}
        </div>
      );
    }
    const kernel = view.kernel;
    if (view.kind !== 'memory' || !kernel || !kernel.memory) {
      return (
        <div>
          <div className="jp-memguard-tooltip-title">{title}</div>
          <p>{view.reason}</p>
          {footer}
        </div>
      );
    }
    const m = kernel.memory;
    const history = memory.history.get(kernel.id) ?? [];
    const growth = meaningfulGrowth(history, Date.now() / 1000);
    const gpu = formatGpu(kernel.gpu, units);
    const method = memoryMethodText(m, ctx);
    const facts = [
      trans.__('Peak %1', formatBytes(m.peak_bytes, units)),
      trans._n('%1 child process', '%1 child processes', m.children.length)
    ];
    if (growth !== null) {
      facts.push(trans.__('growing %1', formatRate(growth, units)));
    }
    return (
      <div>
        <div className="jp-memguard-tooltip-title">{title}</div>
        <div className="jp-memguard-tooltip-lead">
          {trans.__(
            'The kernel uses %1',
            usageText(usedBytes(m), kernel.limit_bytes, ctx)
          )}
        </div>
        {method ? <p className="jp-memguard-tooltip-method">{method}</p> : null}
        <p>{linesText(kernel, memory.status?.settings, ctx)}</p>
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
          width={280}
          height={56}
          label={trans.__(
            'Memory of the last %1 samples against the limit; dashed: the warn and stop lines',
            history.length
          )}
        />
        <div className="jp-memguard-tooltip-facts">{facts.join(' · ')}</div>
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
