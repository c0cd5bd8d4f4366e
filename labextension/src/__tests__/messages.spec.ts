import {
  fit,
  haltingText,
  MAX_NOTICE_LENGTH,
  terminationNotice,
  warningText
} from '../messages';
import { ITermination } from '../types';

function termination(
  verdict: string,
  extra: Partial<ITermination> = {}
): ITermination {
  return {
    id: 1,
    kernel_id: 'k1',
    path: 'work/big.ipynb',
    verdict,
    confidence: 'confirmed',
    explanation: 'server text',
    evidence: {
      last_rss_bytes: 3.9e9,
      peak_rss_bytes: 3.95e9,
      limit_bytes: 4e9
    },
    ...extra
  };
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
  'unknown'
];

describe('terminationNotice', () => {
  it('explains an OOM kill with the figures', () => {
    const notice = terminationNotice(
      termination('oom_killed', { path: null })
    )!;
    expect(notice.message).toBe(
      'Kernel terminated — out of memory: it used 3.9 GB of a 4.0 GB limit when the system killed it.'
    );
    expect(notice.sticky).toBe(true);
    expect(notice.type).toBe('error');
  });

  it('says "likely" when the evidence is only medium, and names the notebook', () => {
    const notice = terminationNotice(
      termination('oom_killed', { confidence: 'medium' })
    )!;
    expect(notice.message).toBe(
      'Kernel terminated — likely out of memory (big.ipynb): it used 3.9 GB of a 4.0 GB limit when the system killed it.'
    );
  });

  it('explains a memguard halt with the peak and that the notebook was saved', () => {
    const notice = terminationNotice(
      termination('halted_by_memguard', {
        evidence: { last_rss_bytes: 0, peak_rss_bytes: 3.7e9, limit_bytes: 4e9 }
      })
    )!;
    expect(notice.message).toContain('halted by memguard');
    expect(notice.message).toContain('3.7 GB of a 4.0 GB limit');
    expect(notice.message).toContain('saved');
  });

  it('names the signal of a crash and the code of an exit', () => {
    expect(
      terminationNotice(
        termination('crashed', { evidence: { exit_signal: 'SIGSEGV' } })
      )!.message
    ).toContain('crashed with SIGSEGV');
    expect(
      terminationNotice(termination('exited', { evidence: { exit_code: 3 } }))!
        .message
    ).toContain('exited with code 3');
  });

  it('never blames memory for a plain kill', () => {
    const text = terminationNotice(termination('killed_externally'))!.message;
    expect(text).toContain('nothing suggests memory was the cause');
  });

  it('has distinct texts for idle culls and child OOM kills', () => {
    expect(terminationNotice(termination('culled_idle'))!.message).toContain(
      'idle'
    );
    const child = terminationNotice(termination('child_oom_killed'))!;
    expect(child.message).toContain('still running');
    expect(child.type).toBe('warning');
  });

  it('reports a GPU out-of-memory error as a passing warning', () => {
    const notice = terminationNotice(
      termination('gpu_out_of_memory', {
        evidence: { gpu_last_bytes: 76e9 }
      })
    )!;
    expect(notice.message).toBe(
      'A cell ran out of GPU memory (big.ipynb); the kernel is still running. It holds 76.0 GB of GPU memory.'
    );
    expect(notice.type).toBe('warning');
    expect(notice.sticky).toBe(false);
    const bare = terminationNotice(
      termination('gpu_out_of_memory', { evidence: {}, path: null })
    )!;
    expect(bare.message).toBe(
      'A cell ran out of GPU memory; the kernel is still running.'
    );
  });

  it('stays quiet for user actions', () => {
    expect(terminationNotice(termination('user_shutdown'))).toBeNull();
    expect(terminationNotice(termination('user_restart'))).toBeNull();
    expect(terminationNotice(termination('server_shutdown'))).toBeNull();
  });

  it('falls back to the server explanation for unknown verdicts', () => {
    expect(terminationNotice(termination('unknown'))!.message).toContain(
      'server text'
    );
  });

  it('copes with missing figures', () => {
    const notice = terminationNotice(
      termination('oom_killed', { evidence: {}, path: null })
    )!;
    expect(notice.message).toBe('Kernel terminated — out of memory.');
  });

  it('always fits in a notification, even with a long path', () => {
    const path = `deep/${'very-long-directory-name/'.repeat(8)}${'x'.repeat(120)}.ipynb`;
    for (const verdict of VERDICTS) {
      for (const p of [path, 'a.ipynb', null]) {
        const notice = terminationNotice(
          termination(verdict, { path: p, explanation: 'y'.repeat(300) })
        )!;
        expect(notice.message.length).toBeLessThanOrEqual(MAX_NOTICE_LENGTH);
      }
    }
  });
});

describe('fit', () => {
  it('adds the name only where it fits', () => {
    expect(fit('Lead', 'a.ipynb', '.')).toBe('Lead (a.ipynb).');
    expect(fit('Lead', 'x'.repeat(200), '.')).toBe('Lead.');
    expect(fit('Lead', null, '.')).toBe('Lead.');
  });
});

describe('warnings', () => {
  it('warns with usage and percentage', () => {
    expect(warningText('dir/a.ipynb', 3.3e9, 4e9)).toBe(
      'Kernel memory high (a.ipynb): 3.3 GB, 83% of its 4.0 GB limit. It will be halted if it grows.'
    );
  });
  it('announces a halt, or what a dry run would do', () => {
    expect(haltingText('a.ipynb', false)).toContain(
      'halting a kernel (a.ipynb)'
    );
    expect(haltingText(null, true)).toContain('dry run');
  });
});
