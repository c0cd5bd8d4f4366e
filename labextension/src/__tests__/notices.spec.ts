/// <reference types="node" />
import * as fs from 'fs';
import * as path from 'path';

import { IIncident, newIncident } from '../model/incidents';
import { compose, MAX_NOTICE_LENGTH, plainTrans } from '../texts/common';
import {
  gpuStopConfirmation,
  INoticeContext,
  noticeFor,
  restartLabel
} from '../texts/notices';
import { ctx, GiB, MiB, terminationRecord, wordsOf } from './fixtures';

const noticeCtx: INoticeContext = {
  ...ctx,
  now: 1e6,
  notebookOpen: true,
  canStop: true
};

function incident(fields: Partial<IIncident>): IIncident {
  return newIncident('k1', 0, {
    path: 'work/big.ipynb',
    limitBytes: 600 * MiB,
    ...fields
  });
}

const stopped = wordsOf(
  'Kernel stopped: it ran out of memory',
  'memguard stopped the kernel while cell [7] ran. Its variables are lost; restart the kernel.',
  { advice: 'Load big.csv in chunks.' }
);

describe('compose', () => {
  it('puts the headline first and keeps what to do when space is short', () => {
    const body = ['What happened here.', 'What it means.', 'What to do.'];
    expect(compose(['Headline'], body)).toBe(
      'Headline\nWhat happened here. What it means. What to do.'
    );
    expect(compose(['Headline'], body, 40)).toBe(
      'Headline\nWhat happened here. What to do.'
    );
    expect(compose(['Headline'], body, 22)).toBe('Headline\nWhat to do.');
  });
  it('drops the name from the headline before dropping sentences', () => {
    const long = 'x'.repeat(150);
    expect(compose([`Head (${long})`, 'Head'], ['Do this.'])).toBe(
      'Head\nDo this.'
    );
  });
  it('keeps the first sentence when told it matters most', () => {
    const body = ['Who did what.', 'A remark.'];
    expect(compose(['Headline'], body, 40, 'first')).toBe(
      'Headline\nWho did what. A remark.'
    );
    expect(compose(['Headline'], body, 25, 'first')).toBe(
      'Headline\nWho did what.'
    );
    expect(compose(['Headline'], body, 14, 'first')).toBe('Who did what.');
  });
  it('does without a headline, and cuts what fits nowhere', () => {
    expect(compose([], ['Only words.'])).toBe('Only words.');
    expect(compose([''], ['y'.repeat(200)]).length).toBe(MAX_NOTICE_LENGTH);
  });
});

describe('one notice per incident, in the server’s words', () => {
  it('warns with the server’s headline and summary, and offers what helps', () => {
    const view = noticeFor(
      incident({
        phase: 'warning',
        words: wordsOf(
          'Memory high',
          'Its kernel uses 488 MiB of 600 MiB. memguard stops it at 540 MiB: save your work.',
          { severity: 'warning' }
        )
      }),
      noticeCtx
    )!;
    expect(view.message).toBe(
      'Memory high (big.ipynb)\nIts kernel uses 488 MiB of 600 MiB. memguard stops it at 540 MiB: save your work.'
    );
    expect(view.type).toBe('warning');
    expect(view.autoClose).toBe(false);
    expect(view.actions).toEqual(['interrupt', 'save', 'panel']);
    expect(
      noticeFor(incident({ phase: 'warning', words: stopped }), {
        ...noticeCtx,
        notebookOpen: false
      })!.actions
    ).toEqual(['interrupt', 'panel']);
  });

  it('says it saves the notebook while memguard stops the kernel', () => {
    const words = wordsOf(
      'memguard is stopping the kernel',
      'It used 545 MiB, past its stop line of 540 MiB.',
      { severity: 'warning' }
    );
    const view = noticeFor(incident({ phase: 'halting', words }), noticeCtx)!;
    expect(view.message).toBe(
      'memguard is stopping the kernel (big.ipynb)\nIt used 545 MiB, past its stop line of 540 MiB. Saving the notebook…'
    );
    const saved = noticeFor(
      incident({ phase: 'halting', words, saved: 'saved' }),
      noticeCtx
    )!;
    expect(saved.message).not.toContain('Saving');
    const dry = noticeFor(
      incident({ phase: 'halting', words, dryRun: true }),
      noticeCtx
    )!;
    expect(dry.autoClose).toBe(15000);
    expect(dry.message).not.toContain('Saving');
    // Once a step is taken: why (the halt's headline), then what memguard does now.
    const stepped = noticeFor(
      incident({
        phase: 'halting',
        words,
        saved: 'saved',
        step: 'interrupt',
        stepWords: wordsOf(
          'Interrupting the running cell',
          'Interrupting the running cell (memory: 545 MiB).'
        )
      }),
      noticeCtx
    )!;
    expect(stepped.message).toBe(
      'memguard is stopping the kernel (big.ipynb)\nInterrupting the running cell (memory: 545 MiB).'
    );
  });

  it('ends as the stop notice: the server’s words and advice, sticky, with a restart', () => {
    const t = terminationRecord('halted_by_memguard', { words: stopped });
    const view = noticeFor(
      incident({
        phase: 'ended',
        termination: t,
        words: stopped,
        saved: 'saved'
      }),
      noticeCtx
    )!;
    // The whole summary first; the advice where it fits too (else it is in Details).
    expect(view.message).toBe(
      'Kernel stopped: it ran out of memory (a.ipynb)\nmemguard stopped the kernel while cell [7] ran. Its variables are lost; restart the kernel.'
    );
    const advised = noticeFor(
      incident({
        phase: 'ended',
        termination: t,
        words: { ...stopped, summary: 'It ran out of memory.' }
      }),
      noticeCtx
    )!;
    expect(advised.message).toBe(
      'Kernel stopped: it ran out of memory (a.ipynb)\nIt ran out of memory. Load big.csv in chunks.'
    );
    expect(view.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
    expect(view.type).toBe('error');
    expect(view.persist).toBe(true);
    expect(view.actions).toEqual(['restart', 'details', 'dismiss']);
    const short = noticeFor(
      incident({
        phase: 'ended',
        termination: t,
        words: wordsOf('Kernel stopped', 'It ran out of memory.'),
        saved: 'saved'
      }),
      noticeCtx
    )!;
    expect(short.message).toBe(
      'Kernel stopped (a.ipynb)\nIt ran out of memory. The notebook was saved.'
    );
  });

  it('says when the kernel runs again, and stops being persisted', () => {
    const t = terminationRecord('killed_externally');
    const words = wordsOf(
      'Kernel stopped by another program',
      'Another process killed it. Restart the kernel.'
    );
    const back = noticeFor(
      incident({ phase: 'back', termination: t, words, stoppedShownAt: 0 }),
      noticeCtx
    )!;
    expect(back.message).toBe(
      'Kernel stopped by another program\nAnother process killed it. The kernel is running again; its variables were lost, so run your cells again.'
    );
    expect(back.persist).toBe(false);
    expect(back.autoClose).toBe(15000);
    expect(back.type).toBe('info');
  });

  it('tells an interrupt the kernel survived in its own words', () => {
    const words = wordsOf(
      'Cell stopped: memory limit',
      'memguard stopped cell [7] at its stop line; the kernel keeps its variables. Free `df` (2 GiB) before you run it again.',
      { severity: 'warning' }
    );
    const view = noticeFor(
      incident({
        phase: 'kept',
        words,
        termination: terminationRecord('interrupted_kept', {
          survived: true,
          words
        })
      }),
      noticeCtx
    )!;
    expect(view.message.startsWith('Cell stopped: memory limit')).toBe(true);
    expect(view.message).toContain('Free `df` (2 GiB)');
    expect(view.message).not.toMatch(/Kernel stopped/);
    expect(view.actions).toEqual(['panel', 'details', 'dismiss']);
    expect(view.persist).toBe(false);
  });

  it('renders an unknown verdict with its own words and severity', () => {
    const words = wordsOf('Kernel abducted', 'Aliens took it.', {
      severity: 'info'
    });
    const view = noticeFor(
      incident({
        phase: 'ended',
        words,
        termination: terminationRecord('abducted', { words })
      }),
      noticeCtx
    )!;
    expect(view.message).toBe('Kernel abducted (a.ipynb)\nAliens took it.');
    expect(view.type).toBe('info');
  });

  it('shows a server that stopped abruptly once, with Details', () => {
    const words = wordsOf(
      'The Jupyter server stopped abruptly',
      'Its kernels were lost with it; run your cells again.',
      { severity: 'warning' }
    );
    const view = noticeFor(
      incident({
        phase: 'earlier',
        words,
        termination: terminationRecord('server_died', { words })
      }),
      noticeCtx
    )!;
    expect(view.message).toContain('The Jupyter server stopped abruptly');
    expect(view.actions).toEqual(['details', 'dismiss']);
    expect(view.persist).toBe(false);
  });

  it('shows memory pressure as the server words it, and its relief', () => {
    const words = wordsOf(
      '',
      'A process outside your notebooks, `python train.py` (pid 4242, terminal 1), uses 1.6 GiB of the 2 GiB limit',
      { severity: 'warning' }
    );
    const view = noticeFor(
      newIncident(null, 0, { phase: 'pressure', words }),
      noticeCtx
    )!;
    expect(view.message).toBe(words.summary);
    expect(view.actions).toEqual(['panel']);
    expect(view.autoClose).toBe(false);
    const relieved = noticeFor(
      newIncident(null, 0, {
        phase: 'relieved',
        usageBytes: GiB,
        limitBytes: 2 * GiB
      }),
      noticeCtx
    )!;
    expect(relieved.message).toBe(
      'Memory is no longer short: this server uses 1 GiB of 2 GiB.'
    );
    expect(relieved.type).toBe('info');
  });

  it('keeps who holds the memory when the server’s pressure words are too long', () => {
    // As jupyter_memguard.wording.pressure_words has it: headline and summary do not fit.
    const words = wordsOf(
      'Memory is short, outside your notebooks',
      'A process outside your notebooks, `python train.py` (pid 4242, terminal 1), uses 1.6 GiB of the 2 GiB limit. memguard stops no notebook for memory it does not use.',
      { severity: 'warning' }
    );
    const view = noticeFor(
      newIncident(null, 0, { phase: 'pressure', words }),
      noticeCtx
    )!;
    expect(view.message).toBe(
      'A process outside your notebooks, `python train.py` (pid 4242, terminal 1), uses 1.6 GiB of the 2 GiB limit.'
    );
    const fits = wordsOf(
      words.headline,
      'Who: `train.py` uses 1.6 GiB. A remark.'
    );
    expect(
      noticeFor(newIncident(null, 0, { phase: 'pressure', words: fits }), {
        ...noticeCtx
      })!.message
    ).toBe(
      'Memory is short, outside your notebooks\nWho: `train.py` uses 1.6 GiB. A remark.'
    );
  });

  it('offers to stop the idle GPU holders, then says what it did', () => {
    const words = wordsOf(
      'GPU 0 is full',
      'Other notebooks hold it: a.ipynb (12 GiB, idle), b.ipynb (8 GiB, running).',
      { severity: 'warning' }
    );
    const holders = [
      {
        kernel_id: 'b',
        path: 'b.ipynb',
        bytes: 8 * GiB,
        idle: false,
        culled: false
      },
      {
        kernel_id: 'a',
        path: 'a.ipynb',
        bytes: 12 * GiB,
        idle: true,
        culled: false
      }
    ];
    const gpu = {
      kernel_id: 'k1',
      path: 'train.ipynb',
      device: 0,
      requested_bytes: GiB,
      holders,
      words
    };
    const view = noticeFor(incident({ phase: 'kept', words, gpu }), noticeCtx)!;
    expect(view.message).toContain('a.ipynb (12 GiB, idle)');
    expect(view.actions).toEqual(['stopIdle', 'panel']);
    expect(
      noticeFor(incident({ phase: 'kept', words, gpu }), {
        ...noticeCtx,
        canStop: false
      })!.actions
    ).toEqual(['panel']);
    const done = noticeFor(
      incident({
        phase: 'kept',
        words,
        gpu,
        gpuStop: { stopped: [holders[1]], failed: [] }
      }),
      noticeCtx
    )!;
    expect(done.message).toContain('Stopped a.ipynb');
    expect(done.type).toBe('success');
    const text = gpuStopConfirmation([holders[1]], ctx);
    expect(text.title).toBe('Stop 1 idle notebook?');
    expect(text.body).toContain('12 GiB of GPU memory');
    expect(text.body).toContain('variables are lost');
  });

  it('reports memory back down, and shows nothing for a closed incident', () => {
    const down = noticeFor(
      incident({ phase: 'recovered', currentBytes: 120 * MiB }),
      noticeCtx
    )!;
    expect(down.message).toBe(
      'Memory back down in big.ipynb\nIts kernel now uses 120 MiB of 600 MiB.'
    );
    expect(noticeFor(incident({ phase: 'closed' }), noticeCtx)).toBeNull();
  });

  it('fits every notice in a notification, whatever the server says', () => {
    const long = wordsOf('h'.repeat(60), `${'Sentence. '.repeat(30)}Do this.`);
    const p = `${'d/'.repeat(80)}x.ipynb`;
    for (const phase of [
      'warning',
      'halting',
      'ended',
      'back',
      'kept',
      'earlier',
      'pressure'
    ] as const) {
      const view = noticeFor(
        incident({
          phase,
          path: p,
          words: long,
          termination: terminationRecord('x', { path: p, words: long })
        }),
        noticeCtx
      )!;
      expect(view.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
    }
  });
});

describe('restart and run up to the cell that failed', () => {
  it('says which cells it runs again, in plain words', () => {
    expect(
      restartLabel({ lastIndex: 7, count: 6, first: 1, last: 6 }, plainTrans)
    ).toBe('Restart and run cells [1]–[6] again');
    expect(
      restartLabel({ lastIndex: 0, count: 1, first: 4, last: 4 }, plainTrans)
    ).toBe('Restart and run cell [4] again');
    expect(
      restartLabel(
        { lastIndex: 2, count: 3, first: null, last: null },
        plainTrans
      )
    ).toBe('Restart and run the 3 cells above again');
    expect(restartLabel(null, plainTrans)).toBe('Restart the kernel');
  });
});

describe('the server’s words, not ours', () => {
  /** Every source file of the extension (not the specs). */
  function sources(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        return entry.name === '__tests__' ? [] : sources(full);
      }
      return /\.tsx?$/.test(entry.name) ? [full] : [];
    });
  }

  it('holds no verdict headline or summary of its own', () => {
    const verdictWords = [
      /Kernel stopped[:\s]/,
      /Kernel stopped by another/,
      /out of memory['"]/,
      /Kernel crashed/,
      /Kernel exited/,
      /Kernel shut down[:\s]/,
      /ran out of GPU memory/,
      /A kernel process ran out/,
      /Kernel restarted by a user/,
      /Kernel ended with the server/,
      /killed the kernel/,
      /nothing shows that memory/
    ];
    const files = sources(path.join(__dirname, '..'));
    expect(files.length).toBeGreaterThan(20);
    for (const file of files) {
      const text = fs.readFileSync(file, 'utf8');
      for (const pattern of verdictWords) {
        expect({ file, found: pattern.test(text) }).toEqual({
          file,
          found: false
        });
      }
    }
  });

  it('never reads reason text: no regex over a reason', () => {
    for (const file of sources(path.join(__dirname, '..'))) {
      const text = fs.readFileSync(file, 'utf8');
      expect({
        file,
        found: /reason\s*\?\?\s*''\)|\.test\([^)]*reason/.test(text)
      }).toEqual({
        file,
        found: false
      });
    }
  });
});
