/**
 * Typed calls to /api/memguard/*.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { KernelAPI, ServerConnection } from '@jupyterlab/services';

import {
  IBudget,
  ICellRecord,
  IKernelInfo,
  IStatus,
  ITerminationPage
} from './types';

/** An error answer of the API (404 when the server extension is absent, 403 when denied). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'api/memguard', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.message ?? response.statusText);
  }
  return data as T;
}

export function getKernels(): Promise<{
  kernels: IKernelInfo[];
  budget: IBudget;
}> {
  return request('kernels');
}

export function getKernel(kernelId: string): Promise<IKernelInfo> {
  return request(`kernels/${encodeURIComponent(kernelId)}`);
}

/** A kernel's recent cells, newest first (the running one first). */
export function getCells(kernelId: string): Promise<{ cells: ICellRecord[] }> {
  return request(`kernels/${encodeURIComponent(kernelId)}/cells`);
}

export function getStatus(): Promise<IStatus> {
  return request('status');
}

export function getTerminations(
  query: { kernel_id?: string; limit?: number; since?: number } = {}
): Promise<ITerminationPage> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) {
      params.set(key, String(value));
    }
  }
  const suffix = params.toString();
  return request(`terminations${suffix ? `?${suffix}` : ''}`);
}

export function haltKernel(
  kernelId: string,
  reason: string
): Promise<{ accepted: boolean }> {
  return request(`kernels/${encodeURIComponent(kernelId)}/halt`, {
    method: 'POST',
    body: JSON.stringify({ reason })
  });
}

/** Interrupt a kernel through jupyter_server (works whether or not its notebook is open). */
export function interruptKernel(kernelId: string): Promise<void> {
  return KernelAPI.interruptKernel(kernelId);
}
