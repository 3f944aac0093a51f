import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { flushSync, mount, unmount } from 'svelte';
import type { Answer, AppInfo, HistoryRun, RunEvent, RunSummary } from './ipc';
import { appInfo, ask, cancelAsk, historyList, historyShow } from './ipc';
import App from './App.svelte';

vi.mock('./ipc', () => ({
  appInfo: vi.fn(),
  ask: vi.fn(),
  cancelAsk: vi.fn(),
  pickFolder: vi.fn(),
  onFolderDrop: vi.fn(() => Promise.resolve(() => {})),
  historyList: vi.fn(() => Promise.resolve([])),
  historySearch: vi.fn(() => Promise.resolve([])),
  historyShow: vi.fn(),
  historyRemove: vi.fn(),
  historyExport: vi.fn(),
  downloadModel: vi.fn(),
  pauseDownload: vi.fn(),
  cancelDownload: vi.fn(),
  deleteModel: vi.fn(),
  importModel: vi.fn(),
  getSettings: vi.fn(() => new Promise(() => {})),
  saveSettings: vi.fn(),
  testConnection: vi.fn(),
}));

const mockedAppInfo = vi.mocked(appInfo);
const mockedAsk = vi.mocked(ask);
const mockedCancel = vi.mocked(cancelAsk);
const mockedHistoryList = vi.mocked(historyList);
const mockedHistoryShow = vi.mocked(historyShow);

const INFO: AppInfo = {
  version: '0.1.0',
  models_dir: '/home/me/.local/share/quarry/models',
  models: [
    {
      id: 'qwen2.5-coder-0.5b-instruct-q4_k_m',
      name: 'Qwen2.5 Coder 0.5B Instruct',
      role: 'sub',
      params: '0.5B',
      quantization: 'Q4_K_M',
      size_bytes: 491400064,
      license: 'Apache-2.0',
      installed: true,
      partial_bytes: null,
      default: true,
      imported: false,
    },
    {
      id: 'qwen2.5-coder-1.5b-instruct-q4_k_m',
      name: 'Qwen2.5 Coder 1.5B Instruct',
      role: 'root',
      params: '1.5B',
      quantization: 'Q4_K_M',
      size_bytes: 1117320768,
      license: 'Apache-2.0',
      installed: false,
      partial_bytes: null,
      default: true,
      imported: false,
    },
  ],
};

let target: HTMLElement;
let app: Record<string, unknown> | null = null;

/** Let the appInfo() promise settle, then apply Svelte's pending updates. */
async function settle() {
  for (let i = 0; i < 3; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
  flushSync();
}

function render() {
  app = mount(App, { target });
  flushSync();
}

beforeEach(() => {
  target = document.createElement('div');
  document.body.appendChild(target);
});

afterEach(() => {
  if (app) unmount(app);
  app = null;
  target.remove();
  mockedAppInfo.mockReset();
  mockedAsk.mockReset();
  mockedCancel.mockReset();
  mockedHistoryList.mockReset();
  mockedHistoryList.mockResolvedValue([]);
  mockedHistoryShow.mockReset();
});

function type(selector: string, value: string) {
  const el = target.querySelector<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>(selector)!;
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? 'change' : 'input', { bubbles: true }));
  flushSync();
}

const ANSWER: Answer = {
  mode: 'rlm',
  answer: 'The storage room code is 7391 (memo.txt:2).',
  citations: [
    { path: 'memo.txt', line_start: 2, line_end: 2, location: 'memo.txt:2', verified: true, check: 'numbers' },
    {
      path: 'room/msa.pdf',
      line_start: 40,
      line_end: 41,
      page: 3,
      page_label: '2',
      location: 'room/msa.pdf p. 2, lines 4–5',
      verified: true,
      check: 'quote',
    },
    {
      path: 'ghost.txt',
      line_start: 9,
      line_end: 9,
      location: 'ghost.txt:9',
      verified: false,
      status: 'failed',
      check: 'exists',
      problem: 'no such file',
    },
    {
      path: 'speech.txt',
      line_start: 1,
      line_end: 60,
      location: 'speech.txt:1-60',
      verified: false,
      status: 'unchecked',
      check: 'exists',
    },
  ],
  iterations: 2,
  sub_calls: 0,
  stop_reason: 'final',
  seconds: 12.34,
  usage: { prompt_tokens: 100, cached_tokens: 0, completion_tokens: 20 },
  notices: [],
};

describe('Asking', () => {
  it('sends the folder, question, mode and models, shows the run live, then the answer and its sources', async () => {
    mockedAppInfo.mockResolvedValue(INFO);
    let release: (a: Answer) => void = () => {};
    let emit: (e: RunEvent) => void = () => {};
    mockedAsk.mockImplementation((_req, onEvent) => {
      emit = onEvent;
      return new Promise<Answer>((r) => (release = r));
    });
    render();
    await settle();
    const button = target.querySelector<HTMLButtonElement>('#ask')!;
    expect(button.disabled).toBe(true);
    type('#folder-path', '/data/room');
    type('#question', 'What is the storage room code?');
    type('#mode', 'rag');
    type('#sub-model', 'qwen2.5-coder-0.5b-instruct-q4_k_m');
    expect(button.disabled).toBe(false);
    target.querySelector<HTMLFormElement>('form.ask')!.dispatchEvent(new Event('submit', { cancelable: true }));
    flushSync();
    expect(mockedAsk).toHaveBeenCalledTimes(1);
    expect(mockedAsk.mock.calls[0][0]).toEqual({
      folder: '/data/room',
      question: 'What is the storage room code?',
      mode: 'rag',
      root_model: null,
      sub_model: 'qwen2.5-coder-0.5b-instruct-q4_k_m',
    });
    expect(target.querySelector('#cancel')).not.toBeNull();

    emit({ type: 'notice', message: 'Starting the local engine with qwen' });
    emit({ type: 'iteration_started', index: 1 });
    emit({ type: 'code_block', iteration: 1, index: 1, code: "print(grep('code'))" });
    emit({
      type: 'repl_result',
      iteration: 1,
      index: 1,
      result: { stdout: 'memo.txt 2 The storage room code is 7391.\n', stderr: '', error: null, value: null, final_answer: null, restarted: false },
    });
    flushSync();
    const live = target.querySelector('#run')!;
    expect(live.textContent).toContain('Starting the local engine');
    expect(live.querySelector('pre.code')?.textContent).toBe("print(grep('code'))");
    expect(live.querySelector('pre.output')?.textContent).toContain('7391');

    release(ANSWER);
    await settle();
    const answer = target.querySelector('#answer')!;
    expect(answer.querySelector('.answer-text')?.textContent).toBe(ANSWER.answer);
    const sources = answer.querySelectorAll('.citations li');
    expect(sources).toHaveLength(4);
    expect(sources[0].textContent).toContain('✓');
    expect(sources[0].textContent).toContain('memo.txt:2');
    // A PDF's citation names its page label and the lines within the page.
    expect(sources[1].textContent).toContain('room/msa.pdf p. 2, lines 4–5');
    expect(sources[2].textContent).toContain('✗');
    expect(sources[2].textContent).toContain('no such file');
    // A file that exists is not a verified source: it is shown apart, as unchecked.
    expect(sources[3].textContent).toContain('?');
    expect(sources[3].textContent).not.toContain('✓');
    expect(sources[3].textContent).toContain('nothing in the answer to check');
    expect(answer.querySelector('#stats')?.textContent).toContain('answered');
    expect(answer.querySelector('#stats')?.textContent).toContain('12.3 s');
    expect(target.querySelector('#cancel')).toBeNull();
    expect(button.disabled).toBe(false);
  });

  it('shows a refused question as one alert and keeps the form', async () => {
    mockedAppInfo.mockResolvedValue(INFO);
    mockedAsk.mockRejectedValue(new Error('/data/none is not a folder'));
    render();
    await settle();
    type('#folder-path', '/data/none');
    type('#question', 'Why?');
    target.querySelector<HTMLFormElement>('form.ask')!.dispatchEvent(new Event('submit', { cancelable: true }));
    await settle();
    expect(target.querySelector('#ask-error')?.textContent).toBe('/data/none is not a folder');
    expect(target.querySelector<HTMLInputElement>('#folder-path')!.value).toBe('/data/none');
  });

  it('Enter in the question asks, Shift+Enter does not', async () => {
    mockedAppInfo.mockResolvedValue(INFO);
    mockedAsk.mockReturnValue(new Promise(() => {}));
    render();
    await settle();
    type('#folder-path', '/d');
    type('#question', 'Q?');
    const box = target.querySelector<HTMLTextAreaElement>('#question')!;
    box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', shiftKey: true, bubbles: true, cancelable: true }));
    flushSync();
    expect(mockedAsk).not.toHaveBeenCalled();
    box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
    flushSync();
    expect(mockedAsk).toHaveBeenCalledTimes(1);
    expect(mockedAsk.mock.calls[0][0]).toMatchObject({ folder: '/d', question: 'Q?' });
  });

  it('cancel asks the backend to stop the run', async () => {
    mockedAppInfo.mockResolvedValue(INFO);
    mockedAsk.mockReturnValue(new Promise(() => {}));
    mockedCancel.mockResolvedValue(true);
    render();
    await settle();
    type('#folder-path', '/d');
    type('#question', 'Q?');
    target.querySelector<HTMLFormElement>('form.ask')!.dispatchEvent(new Event('submit', { cancelable: true }));
    flushSync();
    target.querySelector<HTMLButtonElement>('#cancel')!.click();
    await settle();
    expect(mockedCancel).toHaveBeenCalledTimes(1);
  });
});

describe('App', () => {
  it('shows the title, tagline and drop zone', async () => {
    mockedAppInfo.mockReturnValue(new Promise(() => {}));
    render();
    expect(target.querySelector('h1')?.textContent).toBe('Quarry');
    expect(target.textContent).toContain(
      'Ask questions of a whole folder. Nothing leaves this machine.',
    );
    expect(target.querySelector('.dropzone')?.textContent).toContain('Drop a folder here');
  });

  it('shows a loading line until the backend answers', () => {
    mockedAppInfo.mockReturnValue(new Promise(() => {}));
    render();
    expect(target.querySelector('#models')?.textContent).toContain('Loading models…');
    expect(target.querySelectorAll('.model')).toHaveLength(0);
    expect(target.querySelector('[role="alert"]')).toBeNull();
  });

  it('lists the models from app_info with their install status and the version', async () => {
    mockedAppInfo.mockResolvedValue(INFO);
    render();
    await settle();

    expect(mockedAppInfo).toHaveBeenCalledTimes(1);
    const panel = target.querySelector('#models')!;
    expect(panel.textContent).not.toContain('Loading models…');

    const rows = panel.querySelectorAll<HTMLElement>('.model');
    expect(rows).toHaveLength(2);

    const small = panel.querySelector<HTMLElement>(
      '.model[data-model-id="qwen2.5-coder-0.5b-instruct-q4_k_m"]',
    )!;
    expect(small).not.toBeNull();
    expect(small.textContent).toContain('Qwen2.5 Coder 0.5B Instruct');
    expect(small.querySelector('code')?.textContent).toBe('qwen2.5-coder-0.5b-instruct-q4_k_m');
    expect(small.textContent).toContain('0.5B');
    expect(small.textContent).toContain('Q4_K_M');
    expect(small.textContent).toContain('468.6 MiB');
    expect(small.textContent).toContain('Sub-model');
    expect(small.querySelector('.status')?.textContent?.trim()).toBe('installed');

    const big = panel.querySelector<HTMLElement>(
      '.model[data-model-id="qwen2.5-coder-1.5b-instruct-q4_k_m"]',
    )!;
    expect(big.textContent).toContain('1.0 GiB');
    expect(big.textContent).toContain('Root model');
    expect(big.querySelector('.status')?.textContent?.trim()).toBe('not installed');

    expect(panel.textContent).toContain(INFO.models_dir);
    expect(target.querySelector('#version')?.textContent).toBe('v0.1.0');
    expect(target.querySelector('[role="alert"]')).toBeNull();
  });

  it('shows the error in an alert when app_info fails', async () => {
    mockedAppInfo.mockRejectedValue(new Error('Not running inside the Quarry desktop app'));
    render();
    await settle();

    const alert = target.querySelector('[role="alert"]');
    expect(alert).not.toBeNull();
    expect(alert!.textContent).toBe('Not running inside the Quarry desktop app');
    expect(target.querySelectorAll('.model')).toHaveLength(0);
    expect(target.textContent).not.toContain('Loading models…');
    // The rest of the screen still works.
    expect(target.querySelector('h1')?.textContent).toBe('Quarry');
  });

  it('highlights the drop zone while something is dragged over it', () => {
    mockedAppInfo.mockReturnValue(new Promise(() => {}));
    render();
    const zone = target.querySelector<HTMLElement>('.dropzone')!;
    expect(zone.classList.contains('dragging')).toBe(false);
    zone.dispatchEvent(new Event('dragover', { bubbles: true, cancelable: true }));
    flushSync();
    expect(zone.classList.contains('dragging')).toBe(true);
    zone.dispatchEvent(new Event('dragleave', { bubbles: true }));
    flushSync();
    expect(zone.classList.contains('dragging')).toBe(false);
  });
});

describe('History in the window', () => {
  const SUMMARY: RunSummary = {
    id: 7,
    question: 'What is the storage room code?',
    mode: 'rlm',
    collection: null,
    folder: '/data/room',
    status: 'done',
    started_ms: Date.now() - 5 * 60_000,
    finished_ms: Date.now() - 4 * 60_000,
    preview: 'The storage room code is 7391 (memo.txt:2).',
  };
  const RUN: HistoryRun = {
    id: 7,
    question: SUMMARY.question,
    mode: 'rlm',
    collection: null,
    folder: '/data/room',
    status: 'done',
    started_ms: SUMMARY.started_ms,
    finished_ms: SUMMARY.finished_ms,
    models: { root: 'qwen2.5-coder-1.5b-instruct-q4_k_m', sub: 'qwen2.5-coder-0.5b-instruct-q4_k_m' },
    answer: ANSWER.answer,
    citations: ANSWER.citations,
    stats: { stop_reason: 'final', iterations: 2, seconds: 12.34 },
    error: null,
    pid: 1,
    events: [],
  };

  it('lists past questions, shows one, and asks it again through the form, then lists the new run', async () => {
    mockedAppInfo.mockResolvedValue(INFO);
    mockedHistoryList.mockResolvedValue([SUMMARY]);
    mockedHistoryShow.mockResolvedValue(RUN);
    mockedAsk.mockResolvedValue(ANSWER);
    render();
    await settle();
    const panel = target.querySelector('#history')!;
    const row = panel.querySelector<HTMLButtonElement>('.history-run[data-run-id="7"]')!;
    expect(row.textContent).toContain('What is the storage room code?');
    expect(row.textContent).toContain('answered');
    expect(row.textContent).toContain('5 min ago');
    row.click();
    await settle();
    expect(mockedHistoryShow).toHaveBeenCalledWith(7);
    expect(panel.querySelector('#history-detail .answer-text')?.textContent).toBe(ANSWER.answer);
    const calls = mockedHistoryList.mock.calls.length;
    panel.querySelector<HTMLButtonElement>('#history-reask')!.click();
    await settle();
    expect(mockedAsk).toHaveBeenCalledTimes(1);
    expect(mockedAsk.mock.calls[0][0]).toMatchObject({
      folder: '/data/room',
      question: 'What is the storage room code?',
      mode: 'rlm',
    });
    expect(target.querySelector<HTMLTextAreaElement>('#question')!.value).toBe('What is the storage room code?');
    expect(mockedHistoryList.mock.calls.length).toBeGreaterThan(calls);
  });
});
