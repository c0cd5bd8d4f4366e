/**
 * The token other plugins use to reach memguard's model, and the command ids.
 */
import { Token } from '@lumino/coreutils';

import { MemoryModel } from './model/model';

export const IMemGuardModel = new Token<MemoryModel>(
  'jupyter-memguard:model',
  "memguard's view of the server's kernels, their memory and what happened to them."
);

export const CommandIDs = {
  /** Open the Memory panel; args: {terminationKey?: string} to show one termination. */
  openPanel: 'memguard:open-panel',
  /**
   * Open a Details view with the memory timeline. Args: {kernelId: string} for a running
   * kernel (with {msgId?, executionCount?} to show one cell), or {terminationKey: string}
   * for a kernel stop.
   */
  openDetails: 'memguard:open-details'
} as const;
