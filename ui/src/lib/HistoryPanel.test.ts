import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { flushSync, mount, unmount } from 'svelte';
import type { HistoryRun, RunSummary } from '../ipc';
import { historyExport, historyList, historyRemove, historySearch, historyShow } from '../ipc';
import History from './History.svelte';

vi.mock('../ipc', () => ({
  historyList: vi.fn(),
  historySearch: vi.fn(),
  historyShow: vi.fn(),
  historyRemove: vi.fn(),
  historyExport: vi.fn(),
}));

const list = vi.mocked(historyList);
const search = vi.mocked(historySearch);
const show = vi.mocked(historyShow);
const remove = vi.mocked(historyRemove);
const exportRun = vi.mocked(historyExport);

const now = Date.now();
const RUNS: RunSummary[] = [
  {
    id: 3,
    question: 'Who signed the lease?',
    mode: 'auto',
    collection: null,
    folder: '/data/leases',
    status: 'interrupted',
    started_ms: now - 30_000,
    finished_ms: null,
    preview: null,
  },
  {
    id: 2,
    question: 'Which agreements renew automatically?',
    mode: 'rlm',
    collection: 'contracts',
    folder: '/data/contracts',
    status: 'done',
    started_ms: now - 10 * 60_000,
    finished_ms: now - 9 * 60_000,
    preview: 'The Acme MSA renews every year.',
  },
];

const RUN: HistoryRun = {
  id: 2,
  question: 'Which agreements renew automatically?',
  mode: 'rlm',
  collection: 'contracts',
  folder: '/data/contracts',
  status: 'done',
  started_ms: now - 10 * 60_000,
  finished_ms: now - 9 * 60_000,
  models: { root: 'root', sub: 'sub' },
  answer: 'The Acme MSA renews every year (msa.pdf p. 3, lines 4–5).',
  citations: [
    {
      path: 'msa.pdf',
      line_start: 40,
      line_end: 41,
      page: 3,
      page_label: '3',
      location: 'msa.pdf p. 3, lines 4–5',
      verified: true,
      status: 'verified',
      check: 'quote',
    },
    {
      path: 'ghost.txt',
      line_start: 1,
      line_end: 1,
      location: 'ghost.txt:1',
      verified: false,
      status: 'failed',
      check: 'exists',
      problem: 'no such file',
    },
  ],
  stats: { stop_reason: 'final', iterations: 1, seconds: 61.25 },
  error: null,
  pid: 1,
  events: [
    { type: 'iteration_started', index: 1 },
    { type: 'code_block', iteration: 1, index: 1, code: "print(grep('renew'))" },
    {
      type: 'repl_result',
      iteration: 1,
      index: 1,
      result: { stdout: 'msa.pdf 40 renews', stderr: '', error: null, value: null, final_answer: null, restarted: false },
    },
  ],
};

let target: HTMLElement;
let component: Record<string, unknown> | null = null;
const onReask = vi.fn();

async function settle() {
  for (let i = 0; i < 3; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
  flushSync();
}

function render(props: Record<string, unknown> = {}) {
  component = mount(History, { target, props: { onReask, ...props } });
  flushSync();
}

beforeEach(() => {
  target = document.createElement('div');
  document.body.appendChild(target);
  list.mockResolvedValue(RUNS);
  show.mockResolvedValue(RUN);
});

afterEach(() => {
  if (component) unmount(component);
  component = null;
  target.remove();
  vi.clearAllMocks();
  list.mockReset();
  search.mockReset();
  show.mockReset();
  remove.mockReset();
  exportRun.mockReset();
});

describe('History panel', () => {
  it('lists runs grouped by collection or folder, with status and time', async () => {
    render();
    await settle();
    const groups = target.querySelectorAll('.history-group');
    expect([...groups].map((g) => g.querySelector('.history-place')?.textContent)).toEqual(['leases', 'contracts']);
    const killed = target.querySelector('.history-run[data-run-id="3"]')!;
    expect(killed.textContent).toContain('Who signed the lease?');
    expect(killed.textContent).toContain('interrupted');
    expect(killed.textContent).toContain('just now');
    const done = target.querySelector('.history-run[data-run-id="2"]')!;
    expect(done.textContent).toContain('answered');
    expect(done.textContent).toContain('10 min ago');
    expect(done.textContent).toContain('The Acme MSA renews every year.');
  });

  it('shows a run with its answer, citations and turns, and asks it again', async () => {
    render();
    await settle();
    target.querySelector<HTMLButtonElement>('.history-run[data-run-id="2"]')!.click();
    await settle();
    expect(show).toHaveBeenCalledWith(2);
    const detail = target.querySelector('#history-detail')!;
    expect(detail.querySelector('h3')?.textContent).toBe('Which agreements renew automatically?');
    expect(detail.querySelector('.answer-text')?.textContent).toBe(RUN.answer);
    const sources = detail.querySelectorAll('.citations li');
    expect(sources[0].textContent).toContain('✓');
    expect(sources[0].textContent).toContain('msa.pdf p. 3, lines 4–5');
    expect(sources[1].textContent).toContain('✗');
    expect(sources[1].textContent).toContain('no such file');
    expect(detail.textContent).toContain('61.3 s');
    const events = detail.querySelector('#history-events')!;
    expect(events.querySelector('summary')?.textContent).toContain('1 turn');
    expect(events.querySelector('pre.code')?.textContent).toBe("print(grep('renew'))");
    expect(events.querySelector('pre.output')?.textContent).toBe('msa.pdf 40 renews');
    detail.querySelector<HTMLButtonElement>('#history-reask')!.click();
    expect(onReask).toHaveBeenCalledWith({
      folder: '/data/contracts',
      question: 'Which agreements renew automatically?',
      mode: 'rlm',
    });
  });

  it('searches as one types, marking the matched words', async () => {
    search.mockResolvedValue([{ ...RUNS[1], snippet: 'Which agreements [renew] automatically?' }]);
    render();
    await settle();
    const box = target.querySelector<HTMLInputElement>('#history-search')!;
    box.value = 'renew';
    box.dispatchEvent(new Event('input', { bubbles: true }));
    await new Promise((r) => setTimeout(r, 200));
    await settle();
    expect(search).toHaveBeenCalledWith('renew');
    const rows = target.querySelectorAll('.history-run');
    expect(rows).toHaveLength(1);
    expect(rows[0].querySelector('mark')?.textContent).toBe('renew');

    search.mockResolvedValue([]);
    box.value = 'nothing';
    box.dispatchEvent(new Event('input', { bubbles: true }));
    await new Promise((r) => setTimeout(r, 200));
    await settle();
    expect(target.querySelector('#history-empty')?.textContent).toContain('No question or answer matches.');
  });

  it('deletes a run and lists again; export says where it saved', async () => {
    remove.mockResolvedValue(undefined);
    exportRun.mockResolvedValue('/home/me/quarry-run-2.md');
    render();
    await settle();
    target.querySelector<HTMLButtonElement>('.history-run[data-run-id="2"]')!.click();
    await settle();
    const buttons = [...target.querySelectorAll<HTMLButtonElement>('#history-detail button')];
    buttons.find((b) => b.textContent?.includes('Export Markdown'))!.click();
    await settle();
    expect(exportRun).toHaveBeenCalledWith(2, 'markdown');
    expect(target.querySelector('#history-note')?.textContent).toBe('Saved to /home/me/quarry-run-2.md');

    list.mockResolvedValue([RUNS[0]]);
    target.querySelector<HTMLButtonElement>('#history-delete')!.click();
    await settle();
    expect(remove).toHaveBeenCalledWith(2);
    expect(target.querySelector('#history-detail')).toBeNull();
    expect(target.querySelectorAll('.history-run')).toHaveLength(1);
  });

  it('says when there is nothing yet, and shows a failure as one alert', async () => {
    list.mockResolvedValue([]);
    render();
    await settle();
    expect(target.querySelector('#history-empty')?.textContent).toContain('Every question you ask is kept here.');
    list.mockRejectedValue(new Error('the catalog /d/catalog.sqlite: disk I/O error'));
    component && unmount(component);
    render({ version: 1 });
    await settle();
    expect(target.querySelector('#history-error')?.textContent).toBe('the catalog /d/catalog.sqlite: disk I/O error');
  });

  it('Ctrl+F focuses the search box', async () => {
    render();
    await settle();
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'f', ctrlKey: true, cancelable: true }));
    expect(document.activeElement?.id).toBe('history-search');
  });
});
