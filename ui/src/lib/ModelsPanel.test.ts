// The Models panel in each of a model's states, against a mocked backend: not installed, a
// first run, downloading with progress, paused (also as found after a restart), installed with
// Delete, and a failure shown as the backend's one sentence.
import { afterEach, beforeEach, describe, expect, it, vi, type Mock } from 'vitest';
import { flushSync, mount, unmount } from 'svelte';
import type { AppInfo, DownloadEvent, DownloadOutcome, ModelInfo } from '../ipc';
import { cancelDownload, deleteModel, downloadModel, importModel, pauseDownload } from '../ipc';
import ModelsPanel from './ModelsPanel.svelte';

vi.mock('../ipc', () => ({
  downloadModel: vi.fn(),
  pauseDownload: vi.fn(),
  cancelDownload: vi.fn(),
  deleteModel: vi.fn(),
  importModel: vi.fn(),
}));

const mockedDownload = vi.mocked(downloadModel);
const mockedPause = vi.mocked(pauseDownload);
const mockedCancel = vi.mocked(cancelDownload);
const mockedDelete = vi.mocked(deleteModel);
const mockedImport = vi.mocked(importModel);

const SUB: ModelInfo = {
  id: 'qwen2.5-coder-0.5b-instruct-q4_k_m',
  name: 'Qwen2.5-Coder 0.5B Instruct',
  role: 'sub',
  params: '0.5B',
  quantization: 'Q4_K_M',
  size_bytes: 491400064,
  license: 'Apache-2.0',
  installed: false,
  partial_bytes: null,
  default: true,
  imported: false,
};
const ROOT: ModelInfo = {
  ...SUB,
  id: 'qwen2.5-coder-1.5b-instruct-q4_k_m',
  name: 'Qwen2.5-Coder 1.5B Instruct',
  role: 'root',
  params: '1.5B',
  size_bytes: 1117320768,
};
const BIG: ModelInfo = {
  ...SUB,
  id: 'qwen2.5-coder-7b-instruct-q4_k_m',
  name: 'Qwen2.5-Coder 7B Instruct',
  role: 'root',
  params: '7B',
  size_bytes: null,
  default: false,
};

function infoWith(...models: ModelInfo[]): AppInfo {
  return { version: '0.1.0', models_dir: '/models', models };
}

let target: HTMLElement;
let panel: Record<string, unknown> | null = null;
let onChanged: Mock<() => void>;

async function settle() {
  for (let i = 0; i < 3; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
  flushSync();
}

function render(info: AppInfo) {
  panel = mount(ModelsPanel, { target, props: { info, error: null, onChanged } });
  flushSync();
}

function row(id: string): HTMLElement {
  return target.querySelector<HTMLElement>(`.model[data-model-id="${id}"]`)!;
}

function button(id: string, label: string): HTMLButtonElement {
  const found = [...row(id).querySelectorAll('button')].find((b) => b.textContent?.trim().startsWith(label));
  if (!found) throw new Error(`no button "${label}" in ${row(id).textContent}`);
  return found as HTMLButtonElement;
}

beforeEach(() => {
  target = document.createElement('div');
  document.body.appendChild(target);
  onChanged = vi.fn<() => void>();
});

afterEach(() => {
  if (panel) unmount(panel);
  panel = null;
  target.remove();
  vi.resetAllMocks();
});

describe('Models panel', () => {
  it('on a first run offers the default models with name, size and licence', () => {
    render(infoWith(SUB, ROOT, BIG));
    expect(target.querySelector('#first-run')?.textContent).toContain('No model is installed yet');
    const defaults = target.querySelectorAll('#default-models .model');
    expect([...defaults].map((r) => r.getAttribute('data-model-id'))).toEqual([SUB.id, ROOT.id]);
    const sub = row(SUB.id);
    expect(sub.textContent).toContain('Qwen2.5-Coder 0.5B Instruct');
    expect(sub.querySelector('.size')?.textContent).toBe('468.6 MiB');
    expect(sub.querySelector('.license')?.textContent).toBe('Apache-2.0');
    expect(sub.querySelector('.status')?.textContent?.trim()).toBe('not installed');
    expect(button(SUB.id, 'Download')).toBeTruthy();
    const big = row(BIG.id).querySelector<HTMLElement>('.size')!;
    expect(big.textContent).toBe('—');
    expect(big.title).toBe('learned when it is downloaded');
  });

  it('shows a download live: bytes, rate, time left, then installed', async () => {
    let emit: (e: DownloadEvent) => void = () => {};
    let finish: (o: DownloadOutcome) => void = () => {};
    mockedDownload.mockImplementation((_id, onEvent) => {
      emit = onEvent;
      return new Promise((r) => (finish = r));
    });
    render(infoWith(SUB, ROOT));
    button(SUB.id, 'Download').click();
    flushSync();
    expect(mockedDownload).toHaveBeenCalledWith(SUB.id, expect.any(Function));
    expect(row(SUB.id).querySelector('.status')?.textContent).toBe('downloading');

    emit({ type: 'progress', phase: 'download', done: 104857600, total: 491400064, bytes_per_second: 10485760, eta_seconds: 36.9 });
    flushSync();
    const bar = row(SUB.id).querySelector<HTMLProgressElement>('progress')!;
    expect(bar.value).toBe(104857600);
    expect(bar.max).toBe(491400064);
    const text = row(SUB.id).querySelector('.progress-text')?.textContent ?? '';
    expect(text).toContain('100.0 MiB of 468.6 MiB');
    expect(text).toContain('10.0 MiB/s');
    expect(text).toContain('37 s left');

    emit({ type: 'progress', phase: 'verify', done: 245700032, total: 491400064, bytes_per_second: 1, eta_seconds: 1 });
    flushSync();
    expect(row(SUB.id).querySelector('.progress-text')?.textContent).toContain('Checking the sha256: 50%');

    finish({ status: 'installed', path: '/models/x.gguf', size_bytes: 491400064 });
    await settle();
    expect(target.querySelector('#models-note')?.textContent).toContain('installed and its sha256 checked');
    expect(onChanged).toHaveBeenCalled();
    expect(row(SUB.id).querySelector('progress')).toBeNull();
  });

  it('pauses and cancels a running download through the backend', async () => {
    mockedDownload.mockReturnValue(new Promise(() => {}));
    mockedPause.mockResolvedValue(true);
    mockedCancel.mockResolvedValue();
    render(infoWith(SUB, ROOT));
    button(SUB.id, 'Download').click();
    flushSync();
    button(SUB.id, 'Pause').click();
    await settle();
    expect(mockedPause).toHaveBeenCalledWith(SUB.id);
    button(SUB.id, 'Cancel').click();
    await settle();
    expect(mockedCancel).toHaveBeenCalledWith(SUB.id);
  });

  it('shows a paused download found after a restart, and resumes it from its kept bytes', () => {
    mockedDownload.mockReturnValue(new Promise(() => {}));
    render(infoWith({ ...SUB, partial_bytes: 209715200 }, ROOT));
    const sub = row(SUB.id);
    expect(sub.querySelector('.status')?.textContent).toBe('paused');
    expect(sub.querySelector('.progress-text')?.textContent).toBe('200.0 MiB of 468.6 MiB kept');
    button(SUB.id, 'Resume').click();
    flushSync();
    expect(mockedDownload).toHaveBeenCalledWith(SUB.id, expect.any(Function));
    expect(row(SUB.id).querySelector<HTMLProgressElement>('progress')!.value).toBe(209715200);
  });

  it('deletes an installed model, showing its size on the button and what was freed', async () => {
    mockedDelete.mockResolvedValue(491400064);
    render(infoWith({ ...SUB, installed: true }, ROOT));
    expect(target.querySelector('#first-run')).toBeNull();
    expect(row(SUB.id).querySelector('.status')?.textContent).toBe('installed');
    const del = button(SUB.id, 'Delete');
    expect(del.textContent).toBe('Delete (468.6 MiB)');
    del.click();
    await settle();
    expect(mockedDelete).toHaveBeenCalledWith(SUB.id);
    expect(target.querySelector('#models-note')?.textContent).toBe('Qwen2.5-Coder 0.5B Instruct is deleted; 468.6 MiB freed.');
    expect(onChanged).toHaveBeenCalled();
  });

  it('shows a failed download as the one sentence from the backend, with Try again', async () => {
    const sentence =
      'not enough free space in /models: qwen2.5-coder-0.5b-instruct-q4_k_m needs 532.6 MiB but only 10.0 MiB is free; free some space and press Download again';
    mockedDownload.mockRejectedValue(new Error(sentence));
    render(infoWith(SUB, ROOT));
    button(SUB.id, 'Download').click();
    await settle();
    expect(row(SUB.id).querySelector('[role="alert"]')?.textContent).toBe(sentence);
    expect(row(ROOT.id).querySelector('[role="alert"]')).toBeNull();
    mockedDownload.mockReturnValue(new Promise(() => {}));
    button(SUB.id, 'Try again').click();
    flushSync();
    expect(row(SUB.id).querySelector('[role="alert"]')).toBeNull();
    expect(row(SUB.id).querySelector('.status')?.textContent).toBe('downloading');
  });

  it('imports a GGUF through the file dialog and says when it is not a model', async () => {
    mockedImport.mockResolvedValueOnce('my-model-q8_0');
    render(infoWith(SUB, ROOT));
    target.querySelector<HTMLButtonElement>('#import-gguf')!.click();
    await settle();
    expect(target.querySelector('#models-note')?.textContent).toBe('Imported my-model-q8_0.');
    expect(onChanged).toHaveBeenCalledTimes(1);
    mockedImport.mockRejectedValueOnce(new Error('/x/notes.gguf is not a usable GGUF model file: bad magic; choose a .gguf model file'));
    target.querySelector<HTMLButtonElement>('#import-gguf')!.click();
    await settle();
    expect(target.querySelector('#models-error')?.textContent).toContain('choose a .gguf model file');
  });
});
