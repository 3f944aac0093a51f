import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { flushSync, mount, unmount } from 'svelte';
import type { AppInfo } from './ipc';
import { appInfo } from './ipc';
import App from './App.svelte';

vi.mock('./ipc', () => ({ appInfo: vi.fn() }));

const mockedAppInfo = vi.mocked(appInfo);

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
      installed: true,
    },
    {
      id: 'qwen2.5-coder-1.5b-instruct-q4_k_m',
      name: 'Qwen2.5 Coder 1.5B Instruct',
      role: 'root',
      params: '1.5B',
      quantization: 'Q4_K_M',
      size_bytes: 1117320768,
      installed: false,
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
