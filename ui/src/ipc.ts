// The one module that talks to the Rust backend. Every other module imports from here,
// never from @tauri-apps/api directly, so tests can mock the whole backend with vi.mock('./ipc').
import { invoke } from '@tauri-apps/api/core';

/** One model the app knows about (from the backend's model catalogue). */
export type ModelInfo = {
  id: string;
  name: string;
  /** "root" (the orchestrating model) or "sub" (the worker model). */
  role: string;
  /** Parameter count as shown to people, e.g. "0.5B". */
  params: string;
  quantization: string;
  size_bytes: number;
  installed: boolean;
};

/** What the `app_info` command returns. */
export type AppInfo = {
  version: string;
  models_dir: string;
  models: ModelInfo[];
};

export const NOT_IN_APP_MESSAGE = 'Not running inside the Quarry desktop app';

/** True when this page runs inside the Tauri webview (the IPC bridge is present). */
export function inTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window;
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  if (!inTauri()) throw new Error(NOT_IN_APP_MESSAGE);
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    // Tauri rejects with whatever the command's error serialises to (often a plain string).
    if (e instanceof Error) throw e;
    throw new Error(typeof e === 'string' ? e : `${command} failed: ${JSON.stringify(e)}`);
  }
}

/** Version, models directory and model catalogue with install status. */
export async function appInfo(): Promise<AppInfo> {
  return call<AppInfo>('app_info');
}
