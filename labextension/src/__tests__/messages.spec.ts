import { IIncident, newIncident } from '../incidents';
import {
  budgetText,
  cellNote,
  compose,
  evidenceLines,
  fractionsText,
  haltConfirmation,
  INoticeContext,
  kernelStateText,
  limitSourceText,
  linesText,
  MAX_NOTICE_LENGTH,
  noticeFor,
  plainTrans,
  pressureNotice,
  sentences,
  statusText,
  terminationHeadline,
  terminationSummary
} from '../messages';
import { IStatusSettings, ITermination } from '../types';
import { ctx, GiB, MiB, terminationRecord } from './fixtures';

const noticeCtx: INoticeContext = { ...ctx, now: 1e6, notebookOpen: true };

const SETTINGS: IStatusSettings = {
  warn_fraction: 0.8,
  halt_fraction: 0.9,
  kill_fraction: 0.95,
  dry_run: false,
  guard_enabled: true
};

function termination(
  verdict: string,
  extra: Partial<ITermination> = {}
): ITermination {
  return terminationRecord(verdict, {
    id: 1,
    path: 'work/big.ipynb',
    confidence: 'confirmed',
    explanation: 'server text',
    evidence: {
      last_rss_bytes: 3.9 * GiB,
      peak_rss_bytes: 3.95 * GiB,
      limit_bytes: 4 * GiB
    },
    ...extra
  });
}

function incident(fields: Partial<IIncident>): IIncident {
  return newIncident('k1', 0, {
    path: 'work/big.ipynb',
    usageBytes: 545 * MiB,
    limitBytes: 600 * MiB,
    warnBytes: 480 * MiB,
    haltBytes: 540 * MiB,
    ...fields
  });
}

const VERDICTS = [
  'halted_by_memguard',
  'culled_idle',
  'oom_killed',
  'child_oom_killed',
  'gpu_out_of_memory',
  'killed_externally',
  'crashed',
  'exited',
  'user_shutdown',
  'user_restart',
  'server_shutdown',
  'unknown'
];

/** Words that belong in Details only. */
const JARGON = [
  /halted_by_memguard|oom_killed|killed_externally|culled_idle/,
  /\bconfirmed\b|\bhigh\b|\bmedium\b|\blow\b/
];

describe('compose', () => {
  it('puts the headline first and keeps what to do when space is short', () => {
    const body = ['What happened here.', 'What it means.', 'What to do.'];
    expect(compose(['Headline'], body)).toBe(
      'Headline\nWhat happened here. What it means. What to do.'
    );
    const tight = compose(['Headline'], body, 40);
    expect(tight).toBe('Headline\nWhat happened here. What to do.');
    expect(compose(['Headline'], body, 22)).toBe('Headline\nWhat to do.');
  });
  it('drops the name from the headline before dropping sentences', () => {
    const long = 'x'.repeat(150);
    expect(compose([`Head (${long})`, 'Head'], ['Do this.'])).toBe(
      'Head\nDo this.'
    );
  });
  it('splits sentences', () => {
    expect(sentences('A b. C d? E.')).toEqual(['A b.', 'C d?', 'E.']);
  });
});

describe('terminations in plain words', () => {
  it("uses the server's headline and summary when present", () => {
    const t = termination('oom_killed', {
      headline: 'Kernel stopped: out of memory',
      summary: 'Server sentence one. Server sentence two.'
    });
    expect(terminationHeadline(t, plainTrans)).toBe(
      'Kernel stopped: out of memory'
    );
    expect(terminationSummary(t, ctx)).toBe(
      'Server sentence one. Server sentence two.'
    );
    const view = noticeFor(
      incident({ phase: 'ended', termination: t }),
      noticeCtx
    )!;
    expect(view.message).toBe(
      'Kernel stopped: out of memory (big.ipynb)\nServer sentence one. Server sentence two.'
    );
  });

  it('falls back to its own words, figures in the units asked for', () => {
    const t = termination('oom_killed');
    expect(terminationHeadline(t, plainTrans)).toBe(
      'Kernel stopped: out of memory'
    );
    expect(terminationSummary(t, ctx)).toBe(
      'The system ran out of memory and killed the kernel. It used 3.9 GiB of its 4 GiB limit. Its variables are lost; restart the kernel and use less data.'
    );
    expect(
      terminationHeadline(
        termination('oom_killed', { confidence: 'medium' }),
        plainTrans
      )
    ).toBe('Kernel stopped: probably out of memory');
  });

  it('explains that memguard stops a kernel before its limit', () => {
    const t = termination('halted_by_memguard', {
      evidence: { peak_rss_bytes: 545 * MiB, limit_bytes: 600 * MiB }
    });
    expect(terminationSummary(t, ctx)).toBe(
      'memguard stopped the kernel when it used 545 MiB of its 600 MiB limit, before the system ran out of memory. Its variables are lost; restart the kernel and run the cells again, with less data.'
    );
  });

  it('tells a stop from the Memory panel apart', () => {
    const t = termination('halted_by_memguard', {
      evidence: { intent_reason: 'stopped from the Memory panel (alice)' }
    });
    expect(terminationHeadline(t, plainTrans)).toBe(
      'Kernel stopped from the Memory panel'
    );
  });

  it('never blames memory for a plain kill, and names crashes and exits', () => {
    expect(
      terminationSummary(
        termination('killed_externally', {
          evidence: { exit_signal: 'SIGKILL' }
        }),
        ctx
      )
    ).toContain('nothing shows that memory was the cause');
    expect(
      terminationSummary(
        termination('crashed', { evidence: { exit_signal: 'SIGSEGV' } }),
        ctx
      )
    ).toContain('crashed (SIGSEGV)');
    expect(
      terminationSummary(
        termination('exited', { evidence: { exit_code: 3 } }),
        ctx
      )
    ).toContain('exited with code 3');
  });

  it('keeps verdict names and confidence words out of notices, and fits them', () => {
    const path = `deep/${'very-long-directory-name/'.repeat(8)}${'x'.repeat(120)}.ipynb`;
    for (const verdict of VERDICTS) {
      for (const p of [path, 'a.ipynb', null]) {
        for (const phase of ['ended', 'back'] as const) {
          const view = noticeFor(
            incident({
              phase,
              path: p,
              termination: termination(verdict, {
                path: p,
                explanation: 'y'.repeat(300)
              })
            }),
            noticeCtx
          );
          expect(view).not.toBeNull();
          expect(view!.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
          if (verdict !== 'unknown') {
            for (const jargon of JARGON) {
              expect(view!.message).not.toMatch(jargon);
            }
          }
        }
      }
    }
  });

  it('keeps the evidence for Details', () => {
    const lines = evidenceLines(
      termination('oom_killed', {
        evidence: {
          exit_signal: 'SIGKILL',
          last_rss_bytes: 3.9 * GiB,
          limit_bytes: 4 * GiB,
          limit_source: 'cgroup_v2',
          oom_kill_before: 0,
          oom_kill_after: 1,
          kmsg_lines: ['Killed process 42']
        }
      }),
      ctx
    );
    const map = new Map(lines);
    expect(map.get('Verdict')).toBe('oom_killed');
    expect(map.get('Certainty')).toBe('confirmed');
    expect(map.get('Limit')).toBe("4 GiB (the container's memory limit)");
    expect(map.get('Out-of-memory kills counted (before → after)')).toBe(
      '0 → 1'
    );
    expect(map.get('Kernel log')).toBe('Killed process 42');
  });
});

describe('one notice per kernel event', () => {
  it('warns with the lines and offers actions', () => {
    const view = noticeFor(
      incident({ phase: 'warning', usageBytes: 482 * MiB }),
      noticeCtx
    )!;
    expect(view.message).toBe(
      'Memory high in big.ipynb\nIts kernel uses 482 MiB of 600 MiB (80 %). memguard stops it at 540 MiB: save your work, or free memory.'
    );
    expect(view.type).toBe('warning');
    expect(view.autoClose).toBe(false);
    expect(view.actions).toEqual(['interrupt', 'save', 'panel']);
  });

  it('turns into halting, saying it is past the stop line (below the limit)', () => {
    const view = noticeFor(
      incident({ phase: 'halting', haltingAt: 0 }),
      noticeCtx
    )!;
    expect(view.message).toBe(
      'memguard is stopping the kernel of big.ipynb\nIt used 545 MiB, past its stop line of 540 MiB (90 % of 600 MiB). Saving the notebook…'
    );
    const shutdown = noticeFor(
      incident({ phase: 'halting', haltingAt: 0, step: 'shutdown' }),
      noticeCtx
    )!;
    expect(shutdown.message).toContain('shutting down the kernel of big.ipynb');
  });

  it('says what a dry run would do', () => {
    const view = noticeFor(
      incident({ phase: 'halting', haltingAt: 0, dryRun: true }),
      noticeCtx
    )!;
    expect(view.message).toContain('Dry run');
    expect(view.message).toContain('Nothing is done.');
  });

  it('ends as the stop notice, sticky, saved, with a restart', () => {
    const t = termination('halted_by_memguard', {
      evidence: { peak_rss_bytes: 545 * MiB, limit_bytes: 600 * MiB }
    });
    const view = noticeFor(
      incident({ phase: 'ended', termination: t, saved: 'saved' }),
      noticeCtx
    )!;
    expect(
      view.message.startsWith('Kernel stopped: out of memory (big.ipynb)\n')
    ).toBe(true);
    expect(view.message).toContain('restart the kernel');
    expect(view.type).toBe('error');
    expect(view.autoClose).toBe(false);
    expect(view.persist).toBe(true);
    expect(view.actions).toEqual(['restart', 'details', 'dismiss']);
    expect(
      noticeFor(incident({ phase: 'ended', termination: t }), {
        ...noticeCtx,
        notebookOpen: false
      })!.actions
    ).toEqual(['details', 'dismiss']);
  });

  it('says when the kernel runs again, and stops being persisted', () => {
    const t = termination('killed_externally');
    const back = noticeFor(
      incident({ phase: 'back', termination: t, stoppedShownAt: 0 }),
      noticeCtx
    )!;
    expect(back.message).toBe(
      'Kernel stopped by another program (big.ipynb)\nThe kernel is running again; its variables were lost, so run your cells again.'
    );
    const short = noticeFor(
      incident({
        phase: 'back',
        path: 'a.ipynb',
        termination: termination('killed_externally', {
          summary: 'Another process killed it. Restart the kernel.'
        })
      }),
      noticeCtx
    )!;
    expect(short.message).toBe(
      'Kernel stopped by another program\nAnother process killed it. The kernel is running again; its variables were lost, so run your cells again.'
    );
    expect(back.persist).toBe(false);
    expect(back.autoClose).toBe(15000);
    // Back before anyone saw it stopped (an automatic restart): it stays until dismissed.
    const sticky = noticeFor(
      incident({ phase: 'back', termination: t, stoppedShownAt: null }),
      noticeCtx
    )!;
    expect(sticky.autoClose).toBe(false);
  });

  it('reports recovery after a warning and after an interrupt', () => {
    const down = noticeFor(
      incident({ phase: 'recovered', currentBytes: 120 * MiB }),
      noticeCtx
    )!;
    expect(down.message).toBe(
      'Memory back down in big.ipynb\nIts kernel now uses 120 MiB of 600 MiB.'
    );
    const interrupted = noticeFor(
      incident({ phase: 'recovered', currentBytes: 120 * MiB, haltingAt: 5 }),
      noticeCtx
    )!;
    expect(interrupted.message).toContain(
      'memguard interrupted a cell of big.ipynb'
    );
    expect(interrupted.message).toContain('keeps its variables');
  });

  it('does not speak of a stop line for a stop from the Memory panel', () => {
    const view = noticeFor(
      incident({
        phase: 'halting',
        haltingAt: 0,
        admin: true,
        step: 'shutdown',
        usageBytes: 32 * MiB
      }),
      noticeCtx
    )!;
    expect(view.message).toBe(
      'memguard is stopping the kernel of big.ipynb\nSomeone stopped it from the Memory panel. Saving the notebook…'
    );
    expect(cellNote(incident({ admin: true }), true, ctx)).toBe(
      'memguard stopped this cell: the kernel was stopped from the Memory panel. Its variables are lost; restart the kernel and run the cells again.'
    );
  });

  it('says when a kernel is stopped below its line because the server is short', () => {
    const view = noticeFor(
      incident({ phase: 'halting', haltingAt: 0, usageBytes: 300 * MiB }),
      noticeCtx
    )!;
    expect(view.message).toContain(
      'It used 300 MiB while the server was short of memory.'
    );
    expect(view.message).not.toContain('stop line');
  });

  it('names the process outside the notebooks that holds the memory', () => {
    const view = pressureNotice(
      {
        usage_bytes: 1.9 * GiB,
        limit_bytes: 2 * GiB,
        message:
          'A process outside your notebooks, `python train.py` (pid 4242, terminal 1), uses 1.6 GiB of the 2 GiB limit.'
      },
      ctx
    );
    expect(view.message).toBe(
      'A process outside your notebooks, `python train.py` (pid 4242, terminal 1), uses 1.6 GiB of the 2 GiB limit.'
    );
    expect(
      pressureNotice(
        { usage_bytes: 1, limit_bytes: 2, message: 'Terminal 1 uses it.' },
        ctx
      ).message
    ).toBe(
      'Memory is short outside your notebooks\nTerminal 1 uses it. memguard stops no kernel for it.'
    );
    expect(view.actions).toEqual(['panel']);
  });

  it('shows nothing for a closed incident', () => {
    expect(noticeFor(incident({ phase: 'closed' }), noticeCtx)).toBeNull();
  });

  it('fits every phase in a notification', () => {
    for (const phase of ['warning', 'halting', 'recovered'] as const) {
      for (const path of [`${'d/'.repeat(80)}x.ipynb`, null]) {
        const view = noticeFor(
          incident({
            phase,
            path,
            usageBytes: 1023 * GiB,
            limitBytes: 1024 * GiB
          }),
          noticeCtx
        )!;
        expect(view.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
      }
    }
  });
});

describe('the halted cell', () => {
  it('says why, and what is lost', () => {
    expect(cellNote(incident({ phase: 'ended' }), true, ctx)).toBe(
      'memguard stopped this cell: the kernel used 545 MiB, past its stop line of 540 MiB (90 % of its 600 MiB limit). Its variables are lost; restart the kernel and run the cells again, with less data.'
    );
    expect(cellNote(incident({ phase: 'recovered' }), false, ctx)).toContain(
      'memguard interrupted this cell'
    );
  });
});

describe('panel and status texts', () => {
  const kernel = {
    warn_bytes: 480 * MiB,
    halt_bytes: 540 * MiB,
    limit_bytes: 600 * MiB
  };
  it('explains the warn and stop lines', () => {
    expect(linesText(kernel, SETTINGS, ctx)).toBe(
      'memguard warns at 80 % (480 MiB) and stops the kernel at 90 % (540 MiB).'
    );
    expect(linesText(kernel, { ...SETTINGS, dry_run: true }, ctx)).toContain(
      'dry run'
    );
    expect(
      linesText(kernel, { ...SETTINGS, guard_enabled: false }, ctx)
    ).toContain('does not stop kernels');
    expect(fractionsText(SETTINGS, plainTrans)).toBe(
      'memguard warns when a kernel reaches 80 % of its limit and stops it at 90 %, before the system runs out of memory.'
    );
  });

  it('says what the budget counts', () => {
    const budget = {
      limit_bytes: 24 * GiB,
      limit_source: 'host',
      usage_bytes: 1.5 * GiB,
      usage_source: 'host_meminfo',
      host_total_bytes: 24 * GiB,
      headroom_bytes: 22.5 * GiB,
      usage_fraction: 0.06
    };
    expect(budgetText(budget, ctx)).toBe(
      "This server's memory: 1.5 GiB used of 24 GiB (the whole machine, all programs counted)"
    );
    expect(budgetText({ ...budget, limit_source: 'cgroup_v2' }, ctx)).toContain(
      "container's limit"
    );
  });

  it('names limit sources and kernel states in words', () => {
    expect(limitSourceText('kernel_memory_limit', plainTrans)).toBe(
      "memguard's limit for each kernel (kernel_memory_limit)"
    );
    expect(
      kernelStateText({ execution_state: 'idle', idle_seconds: 12 }, plainTrans)
    ).toBe('Idle for 12 s');
    expect(
      kernelStateText({ execution_state: 'busy', idle_seconds: 0 }, plainTrans)
    ).toBe('Running code');
  });

  it('shows the status item in the configured units', () => {
    expect(statusText(54 * MiB, 600 * MiB, 'binary')).toBe('Mem 54 / 600 MiB');
  });

  it('asks before a halt and says what is lost', () => {
    const text = haltConfirmation(
      {
        path: 'big.ipynb',
        name: 'python3',
        id: 'abcdef123456',
        memory: {
          rss_bytes: 54 * MiB,
          peak_bytes: 60 * MiB,
          growth_bytes_per_s: 0,
          children: [],
          pss_bytes: null,
          uss_bytes: null,
          sampled_at: 0
        }
      },
      ctx
    );
    expect(text.title).toBe('Stop this kernel?');
    expect(text.body).toBe(
      'The kernel of big.ipynb, which uses 54 MiB, will be shut down now. All its variables, and the result of any cell still running, are lost; the notebook itself is kept. Restart the kernel to go on.'
    );
    expect(text.button).toBe('Stop the kernel');
  });
});
