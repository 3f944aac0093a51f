// The Settings panel against a mocked backend: it shows what is stored, saves what is typed
// (keys only when typed, never shown back), tests an endpoint, and shows a refusal as one alert.
import { afterEach, beforeEach, describe, expect, it, vi, type Mock } from 'vitest';
import { flushSync, mount, unmount } from 'svelte';
import type { Settings, Theme } from '../ipc';
import { getSettings, saveSettings, testConnection } from '../ipc';
import SettingsPanel from './SettingsPanel.svelte';

vi.mock('../ipc', () => ({ getSettings: vi.fn(), saveSettings: vi.fn(), testConnection: vi.fn() }));
const mockedGet = vi.mocked(getSettings);
const mockedSave = vi.mocked(saveSettings);
const mockedTest = vi.mocked(testConnection);

const STORED: Settings = {
  root: { source: 'local', model: '', url: '', has_key: false },
  sub: { source: 'endpoint', model: 'small', url: 'https://api.example.com/v1', has_key: true },
  threads: null,
  ctx_size: 8192,
  gpu_layers: 0,
  budgets: { max_iterations: 12, max_sub_calls: 200, max_seconds: 0 },
  ocr: true,
  theme: 'system',
};

let target: HTMLElement;
let panel: Record<string, unknown> | null = null;
let onTheme: Mock<(theme: Theme) => void>;

async function settle() {
  for (let i = 0; i < 3; i++) await Promise.resolve();
  await new Promise((r) => setTimeout(r, 0));
  flushSync();
}

function type(selector: string, value: string) {
  const el = target.querySelector<HTMLInputElement | HTMLSelectElement>(selector)!;
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? 'change' : 'input', { bubbles: true }));
  flushSync();
}

beforeEach(async () => {
  target = document.createElement('div');
  document.body.appendChild(target);
  onTheme = vi.fn<(theme: Theme) => void>();
  mockedGet.mockResolvedValue(structuredClone(STORED));
  panel = mount(SettingsPanel, { target, props: { installed: [], onTheme } });
  await settle();
});

afterEach(() => {
  if (panel) unmount(panel);
  panel = null;
  target.remove();
  vi.resetAllMocks();
});

describe('Settings panel', () => {
  it('shows the stored settings, saying a key is stored without showing it', () => {
    expect(target.querySelector<HTMLSelectElement>('#sub-source')!.value).toBe('endpoint');
    expect(target.querySelector<HTMLInputElement>('#sub-url')!.value).toBe('https://api.example.com/v1');
    const key = target.querySelector<HTMLInputElement>('#sub-key')!;
    expect(key.type).toBe('password');
    expect(key.value).toBe('');
    expect(key.placeholder).toBe('stored (type to replace)');
    expect(target.querySelector('#root-url')).toBeNull();
    expect(onTheme).toHaveBeenCalledWith('system');
  });

  it('saves what was changed, sends a key only when one is typed, and applies the theme', async () => {
    mockedSave.mockImplementation(async (r) => ({ ...r.settings, sub: { ...r.settings.sub, has_key: true } }));
    type('#threads', '6');
    type('#theme', 'dark');
    target.querySelector<HTMLInputElement>('#ocr')!.click();
    type('#sub-key', 'sk-new');
    target.querySelector<HTMLFormElement>('form.settings')!.dispatchEvent(new Event('submit', { cancelable: true }));
    await settle();
    const sent = mockedSave.mock.calls[0][0];
    expect(sent.settings.threads).toBe(6);
    expect(sent.settings.theme).toBe('dark');
    expect(sent.settings.ocr).toBe(false);
    expect(sent.sub_key).toBe('sk-new');
    expect(sent.root_key).toBeNull();
    expect(target.querySelector<HTMLInputElement>('#sub-key')!.value).toBe('');
    expect(target.querySelector('#settings-note')?.textContent).toContain('Settings saved');
    expect(onTheme).toHaveBeenLastCalledWith('dark');
  });

  it('tests an endpoint and shows the answer or the failure sentence', async () => {
    mockedTest.mockResolvedValueOnce('https://api.example.com/v1 answered as small.');
    target.querySelector<HTMLButtonElement>('#sub-test')!.click();
    await settle();
    expect(mockedTest).toHaveBeenCalledWith('sub', STORED.sub);
    expect(target.querySelector('#sub-test-result')?.textContent).toBe('https://api.example.com/v1 answered as small.');
    mockedTest.mockRejectedValueOnce(new Error('could not connect; check the URL, the model name and the key'));
    target.querySelector<HTMLButtonElement>('#sub-test')!.click();
    await settle();
    expect(target.querySelector('#sub-test-result')?.textContent).toContain('check the URL');
  });

  it('shows a refused save as one alert and keeps the form', async () => {
    mockedSave.mockRejectedValue(new Error('the context size must be between 512 and 1048576 tokens'));
    type('#ctx-size', '10');
    target.querySelector<HTMLFormElement>('form.settings')!.dispatchEvent(new Event('submit', { cancelable: true }));
    await settle();
    expect(target.querySelector('#settings-error')?.textContent).toBe('the context size must be between 512 and 1048576 tokens');
    expect(target.querySelector<HTMLInputElement>('#ctx-size')!.value).toBe('10');
  });
});
