import { afterEach, describe, expect, it, vi } from 'vitest';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke }));

const { appInfo, NOT_IN_APP_MESSAGE } = await import('./ipc');

afterEach(() => {
  invoke.mockReset();
  delete (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__;
});

describe('appInfo', () => {
  it('rejects with a clear message outside the desktop app', async () => {
    await expect(appInfo()).rejects.toThrow(NOT_IN_APP_MESSAGE);
    expect(invoke).not.toHaveBeenCalled();
  });

  it('calls the app_info command inside Tauri', async () => {
    (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {};
    const info = { version: '0.1.0', models_dir: '/m', models: [] };
    invoke.mockResolvedValue(info);
    await expect(appInfo()).resolves.toEqual(info);
    expect(invoke).toHaveBeenCalledWith('app_info', undefined);
  });

  it('turns a string rejection from Rust into an Error', async () => {
    (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = {};
    invoke.mockRejectedValue('models dir unreadable');
    await expect(appInfo()).rejects.toThrow('models dir unreadable');
  });
});
