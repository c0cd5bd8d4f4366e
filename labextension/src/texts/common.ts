/**
 * What every view's texts share: the translation bundle (JupyterLab's `ITranslator`, loaded
 * for memguard's domain), notices that fit, names of notebooks and kernels. The server's
 * words (headlines, summaries, advice) are shown as they are: nothing here re-words them.
 */
import { Units } from '../model/types';

/** The part of JupyterLab's TranslationBundle used here. */
export interface ITrans {
  __(msgid: string, ...args: unknown[]): string;
  _n(msgid: string, msgidPlural: string, n: number, ...args: unknown[]): string;
}

function substitute(text: string, args: unknown[]): string {
  return text.replace(/%(\d+)/g, (match, n) =>
    Number(n) >= 1 && Number(n) <= args.length
      ? String(args[Number(n) - 1])
      : match
  );
}

/** A bundle that only fills in %1, %2… (no translation): for the specs. */
export const plainTrans: ITrans = {
  __: (msgid, ...args) => substitute(msgid, args),
  _n: (msgid, plural, n, ...args) =>
    substitute(n === 1 ? msgid : plural, [n, ...args])
};

/** What a text needs: the bundle and the units figures are shown in. */
export interface ITextContext {
  trans: ITrans;
  units: Units;
}

/** The longest message a JupyterLab notification shows uncut. */
export const MAX_NOTICE_LENGTH = 140;

/** The sentences of a text ("A. B? C." → ["A.", "B?", "C."]). */
export function sentences(text: string | null | undefined): string[] {
  return (text ?? '')
    .trim()
    .split(/(?<=[.!?…])\s+/)
    .filter(s => s.length > 0);
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Which sentence of a text matters most when not all of it fits a notice. */
export type Keep = 'last' | 'first';

/**
 * "headline\nbody" within `max` characters: the first headline that fits, then all the
 * sentences, or the first and the last, or the last (what to do), or the first; a text too
 * long for any of these is cut. With `keep = 'first'` (a summary whose first sentence says
 * what happened and who did it, its last only a remark): all, else the first sentence, with
 * a headline if one fits, else alone.
 */
export function compose(
  headlines: ReadonlyArray<string>,
  body: ReadonlyArray<string>,
  max: number = MAX_NOTICE_LENGTH,
  keep: Keep = 'last'
): string {
  const heads = headlines.filter(h => h.length > 0);
  const choices: string[][] = [[...body]];
  if (keep === 'first') {
    if (body.length > 1) {
      choices.push([body[0]]);
    }
  } else {
    if (body.length > 2) {
      choices.push([body[0], body[body.length - 1]]);
    }
    if (body.length > 1) {
      choices.push([body[body.length - 1]], [body[0]]);
    }
  }
  const join = (headline: string | null, choice: string[]): string =>
    [headline, choice.join(' ')].filter(Boolean).join('\n');
  for (const choice of choices) {
    for (const headline of heads.length ? heads : [null]) {
      const text = join(headline, choice);
      if (text.length <= max) {
        return text;
      }
    }
  }
  if (keep === 'first' && body.length) {
    return cut(body[0], max);
  }
  const last = heads[heads.length - 1];
  if (last) {
    return cut(last, max);
  }
  return cut(body.join(' '), max);
}

/** The last part of a path ("work/big.ipynb" → "big.ipynb"). */
export function basename(path: string | null | undefined): string | null {
  return path ? (path.split('/').pop() ?? path) : null;
}

/** A kernel's name in lists: its notebook's file name, else "Kernel 1a2b3c4d". */
export function kernelLabel(
  path: string | null | undefined,
  kernelId: string,
  trans: ITrans
): string {
  return basename(path) ?? trans.__('Kernel %1', kernelId.slice(0, 8));
}

/** The server's headline, with the notebook's name when one is known and it fits. */
export function headlines(
  headline: string,
  path: string | null | undefined
): string[] {
  const name = basename(path);
  if (!headline) {
    return name ? [name] : [];
  }
  return name ? [`${headline} (${name})`, headline] : [headline];
}
