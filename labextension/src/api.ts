/**
 * Typed calls to /api/memguard/* through ServerConnection.makeRequest: every answer is
 * decoded (model/payloads.ts) before anyone sees it. Only the model calls these.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { KernelAPI, ServerConnection } from '@jupyterlab/services';

import { Decoder, DecodeError, isRecord } from './model/decode';
import {
  cellsPage,
  kernelDetail,
  kernelsPage,
  status,
  terminationPage,
  variablesPage
} from './model/payloads';
import {
  ICellRecord,
  IKernelDetail,
  IKernelsPage,
  IStatus,
  ITerminationPage,
  IVariablesPage
} from './model/types';

/** An error answer of the API (404 when the server extension or the kernel is absent). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function request<T>(
  path: string,
  decoder: Decoder<T>,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'api/memguard', path);
  let response: Response;
  try {
    // 'no-cache', not JupyterLab's default 'no-store': that one appends a bare "?<ms>"
    // cache-buster, which the server refuses as an unknown parameter.
    response = await ServerConnection.makeRequest(
      url,
      { cache: 'no-cache', ...init },
      settings
    );
  } catch (error) {
    throw new ServerConnection.NetworkError(
      error instanceof TypeError ? error : new TypeError(String(error))
    );
  }
  const text = await response.text();
  const data: unknown = text ? parse(text) : null;
  if (!response.ok) {
    const message =
      isRecord(data) && typeof data.message === 'string'
        ? data.message
        : response.statusText;
    throw new ApiError(response.status, message);
  }
  try {
    return decoder(data, '');
  } catch (error) {
    if (error instanceof DecodeError) {
      throw new ApiError(
        0,
        `the server's answer to ${path.split('?')[0]} is not in the expected form (${error.message})`
      );
    }
    throw error;
  }
}

const id = encodeURIComponent;

export function getKernels(): Promise<IKernelsPage> {
  return request('kernels', kernelsPage);
}

export function getKernel(kernelId: string): Promise<IKernelDetail> {
  return request(`kernels/${id(kernelId)}`, kernelDetail);
}

/** A kernel's recent cells, newest first (the running one first). */
export async function getCells(kernelId: string): Promise<ICellRecord[]> {
  return (await request(`kernels/${id(kernelId)}/cells`, cellsPage)).cells;
}

/** The largest names in a kernel's namespace (the kernel's agent answers). */
export function getVariables(kernelId: string): Promise<IVariablesPage> {
  return request(`kernels/${id(kernelId)}/variables`, variablesPage);
}

export function getStatus(): Promise<IStatus> {
  return request('status', status);
}

export interface ITerminationQuery {
  kernel_id?: string;
  path?: string;
  verdict?: string;
  since?: number;
  limit?: number;
  offset?: number;
}

export function getTerminations(
  query: ITerminationQuery = {}
): Promise<ITerminationPage> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) {
      params.set(key, String(value));
    }
  }
  const suffix = params.toString();
  return request(`terminations${suffix ? `?${suffix}` : ''}`, terminationPage);
}

/** Stop a kernel now (administrators: write permission on `memguard`). */
export async function haltKernel(
  kernelId: string,
  reason: string
): Promise<void> {
  await request(`kernels/${id(kernelId)}/halt`, (value: unknown) => value, {
    method: 'POST',
    body: JSON.stringify({ reason, via: 'panel' })
  });
}

/** Interrupt a kernel through jupyter_server (whether or not its notebook is open here). */
export function interruptKernel(kernelId: string): Promise<void> {
  return KernelAPI.interruptKernel(kernelId);
}

/** The message of an error, for the texts that say why something failed. */
export function errorText(error: unknown): string {
  return error instanceof Error && error.message
    ? error.message
    : String(error);
}
