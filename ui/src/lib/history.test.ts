import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../ipc';
import { formatWhen, groupByPlace, placeLabel, reaskOf, snippetParts, statusLabel, viewOf } from './history';

const run = (over: Partial<RunSummary>): RunSummary => ({
  id: 1,
  question: 'Q?',
  mode: 'rlm',
  collection: null,
  folder: '/data/room',
  status: 'done',
  started_ms: 0,
  finished_ms: null,
  preview: null,
  ...over,
});

describe('history helpers', () => {
  it('names statuses as people say them; a killed run is interrupted', () => {
    expect(statusLabel('done')).toBe('answered');
    expect(statusLabel('running')).toBe('running…');
    expect(statusLabel('interrupted')).toBe('interrupted');
    expect(statusLabel('cancelled')).toBe('cancelled');
  });

  it('says when: relative while recent, else the local date and time', () => {
    const now = new Date(2026, 11, 2, 17, 0).getTime();
    expect(formatWhen(now - 10_000, now)).toBe('just now');
    expect(formatWhen(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatWhen(now - 2 * 3_600_000, now)).toBe('2 h ago');
    expect(formatWhen(new Date(2026, 10, 30, 9, 5).getTime(), now)).toBe('2026-11-30 09:05');
  });

  it('groups by collection or folder, newest group first, order kept within', () => {
    const runs = [
      run({ id: 4, collection: 'contracts', folder: '/c' }),
      run({ id: 3, folder: '/data/room' }),
      run({ id: 2, collection: 'contracts', folder: '/c' }),
      run({ id: 1, folder: 'C:\\Users\\me\\notes\\' }),
    ];
    const groups = groupByPlace(runs);
    expect(groups.map((g) => [g.place, g.runs.map((r) => r.id)])).toEqual([
      ['contracts', [4, 2]],
      ['room', [3]],
      ['notes', [1]],
    ]);
    expect(placeLabel(run({ folder: '/' }))).toBe('/');
  });

  it('folds stored events into the live view, and re-asks with the run\'s folder, question and mode', () => {
    const view = viewOf([
      { type: 'notice', message: 'auto: the folder is larger than the window' },
      { type: 'iteration_started', index: 1 },
      { type: 'code_block', iteration: 1, index: 1, code: 'print(1)' },
      {
        type: 'repl_result',
        iteration: 1,
        index: 1,
        result: { stdout: '1\n', stderr: '', error: null, value: null, final_answer: null, restarted: false },
      },
    ]);
    expect(view.steps).toEqual([{ index: 1, blocks: [{ code: 'print(1)', output: '1', failed: false }] }]);
    expect(view.notices).toHaveLength(1);
    expect(reaskOf({ folder: '/d', question: 'Why?', mode: 'rag' })).toEqual({ folder: '/d', question: 'Why?', mode: 'rag' });
    expect(reaskOf({ folder: '/d', question: 'Why?', mode: 'something-new' }).mode).toBe('auto');
  });

  it('splits a search snippet into its matched words', () => {
    expect(snippetParts('the [notice] period is [ninety] days')).toEqual([
      { text: 'the ', match: false },
      { text: 'notice', match: true },
      { text: ' period is ', match: false },
      { text: 'ninety', match: true },
      { text: ' days', match: false },
    ]);
    expect(snippetParts('plain')).toEqual([{ text: 'plain', match: false }]);
  });
});
