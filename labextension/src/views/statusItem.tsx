/**
 * The status-bar item: "Mem 54 / 600 MiB" for the kernel of the notebook or console in
 * focus (neutral, amber past the warn line, red past the stop line: the server's `level`),
 * "Kernel stopped" once it has ended, and a tooltip of our own (drawn on hover or focus).
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { VDomModel, VDomRenderer } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { MemoryModel } from '../model/model';
import { IKernel, ITermination } from '../model/types';
import { ITrans } from '../texts/common';
import { gpuText, statusText } from '../texts/status';
import { MemoryTooltip } from './tooltip';

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
  kernel: IKernel | null;
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
          info.memory.used_bytes,
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
    this._unwatch?.();
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
        ? gpuText(view.kernel.gpu, {
            trans: this.model.trans,
            units: this.model.memory.units
          })
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
    // The server's history, for the chart, with every poll while the tooltip is shown.
    const kernelId = this.model.view.kernel?.id;
    this._unwatch?.();
    this._unwatch = kernelId ? this.model.memory.watchKernel(kernelId) : null;
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
      this._unwatch?.();
      this._unwatch = null;
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
  private _unwatch: (() => void) | null = null;
  private _onOpen: () => void;
  private _hideTimer: ReturnType<typeof setTimeout> | null = null;
}
