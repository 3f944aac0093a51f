// The one module that talks to the Rust backend. Every other module imports from here,
// never from @tauri-apps/api directly, so tests can mock the whole backend with vi.mock('./ipc').
import { Channel, invoke } from '@tauri-apps/api/core';
import { getCurrentWebview } from '@tauri-apps/api/webview';

/** One model the app knows about (from the backend's model catalogue). */
export type ModelInfo = {
  id: string;
  name: string;
  /** "root" (the orchestrating model) or "sub" (the worker model). */
  role: string;
  /** Parameter count as shown to people, e.g. "0.5B". */
  params: string;
  quantization: string;
  /** Exact size; null for a Hub model whose size is learned when it is downloaded. */
  size_bytes: number | null;
  license: string;
  installed: boolean;
  /** Bytes of a paused (or interrupted) download, kept for resuming. */
  partial_bytes: number | null;
  /** One of the models Quarry uses when none is chosen: offered first on a first run. */
  default: boolean;
  /** Imported from the person's own file: deleting forgets it and leaves the file. */
  imported: boolean;
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

/** How a question is answered (see `quarry ask --mode`). */
export type Mode = 'auto' | 'rlm' | 'direct' | 'rag';

export type AskRequest = {
  folder: string;
  question: string;
  mode: Mode;
  /** Catalog ids; null is the catalog's default for the role. */
  root_model: string | null;
  sub_model: string | null;
};

export type Usage = { prompt_tokens: number; cached_tokens: number; completion_tokens: number };

export type ReplResult = {
  stdout: string;
  stderr: string;
  error: string | null;
  value: string | null;
  final_answer: string | null;
  restarted: boolean;
};

/** One event of a run, as `quarry ask --json` prints them (quarry_rlm::Event). */
export type RunEvent =
  | { type: 'run_started'; question: string; root_model: string; sub_model: string; context: string }
  | { type: 'iteration_started'; index: number }
  | { type: 'model_delta'; text: string }
  | { type: 'code_block'; iteration: number; index: number; code: string }
  | { type: 'repl_result'; iteration: number; index: number; result: ReplResult }
  | { type: 'sub_call_started'; id: number; prompt_preview: string; prompt_chars: number }
  | { type: 'sub_call_finished'; id: number; ok: boolean; response_preview: string; seconds: number }
  | { type: 'answer'; text: string; source: string }
  | { type: 'usage'; root: Usage; sub: Usage }
  | { type: 'final'; stop_reason: string; iterations: number; sub_calls: number; seconds: number }
  | { type: 'notice'; message: string }
  | { type: 'error'; message: string };

export type Citation = {
  path: string;
  line_start: number;
  line_end: number;
  /** The physical page of a paged document (PDF, Office, EPUB, mail). */
  page?: number;
  page_label?: string;
  /** As a reader wants it: `contracts/msa.pdf p. 12, lines 3–5`, or `notes.txt:3-5`. */
  location: string;
  verified: boolean;
  /** `verified`: the lines hold the answer's quote or numbers; `unchecked`: they exist, with
   * nothing to look for in them; `failed`: they do not exist or do not hold it. */
  status?: 'verified' | 'unchecked' | 'failed';
  /** The answer cited nothing; Quarry found this among the lines the run read. */
  found?: boolean;
  check: string;
  problem?: string;
};

/** The result of `ask` (quarry_rlm::Answer). */
export type Answer = {
  mode: Mode;
  answer: string | null;
  citations: Citation[];
  iterations: number;
  sub_calls: number;
  stop_reason: string;
  seconds: number;
  usage: Usage;
  notices: string[];
};

/** Answers a question about a folder; `onEvent` sees the run as it happens. */
export async function ask(request: AskRequest, onEvent: (e: RunEvent) => void): Promise<Answer> {
  if (!inTauri()) throw new Error(NOT_IN_APP_MESSAGE);
  const channel = new Channel<RunEvent>();
  channel.onmessage = onEvent;
  return call<Answer>('ask', { request, onEvent: channel });
}

/** Stops the question being answered; true when one was running. */
export async function cancelAsk(): Promise<boolean> {
  return call<boolean>('cancel_ask');
}

/** The native folder chooser; null when cancelled. */
export async function pickFolder(): Promise<string | null> {
  return call<string | null>('pick_folder');
}

/** Calls `onDrop` with the path of a folder dropped on the window, and `onHover` while one is
 * dragged over it. Returns the function that stops listening. */
export async function onFolderDrop(
  onDrop: (path: string) => void,
  onHover: (hovering: boolean) => void,
): Promise<() => void> {
  if (!inTauri()) return () => {};
  return getCurrentWebview().onDragDropEvent((event) => {
    const p = event.payload;
    if (p.type === 'over' || p.type === 'enter') onHover(true);
    else if (p.type === 'leave') onHover(false);
    else if (p.type === 'drop') {
      onHover(false);
      if (p.paths.length > 0) onDrop(p.paths[0]);
    }
  });
}

/** Where a recorded run stands (quarry_index::history::RunStatus). */
export type RunStatus = 'running' | 'done' | 'failed' | 'cancelled' | 'interrupted';

/** One line of the history (quarry_index::history::RunSummary). */
export type RunSummary = {
  id: number;
  question: string;
  mode: string;
  /** The collection asked of; null for a folder read directly. */
  collection: string | null;
  folder: string;
  status: RunStatus;
  /** Unix milliseconds. */
  started_ms: number;
  finished_ms: number | null;
  /** The answer's first line, shortened. */
  preview: string | null;
  /** In search results: the matching words in [brackets], with their context. */
  snippet?: string | null;
};

/** Statistics a run recorded when it finished (empty for a failed or interrupted one). */
export type RunStats = {
  mode?: Mode;
  stop_reason?: string;
  iterations?: number;
  sub_calls?: number;
  seconds?: number;
  usage?: Usage;
  notices?: string[];
};

/** One run, whole (quarry_index::history::Run). */
export type HistoryRun = Omit<RunSummary, 'preview' | 'snippet'> & {
  models: { root?: string; sub?: string; root_url?: string | null; sub_url?: string | null; ctx?: number };
  answer: string | null;
  citations: Citation[];
  stats: RunStats;
  error: string | null;
  pid: number | null;
  /** Every event the run streamed, in order. */
  events: RunEvent[];
};

/** Which runs `historyList` returns. */
export type HistoryQuery = {
  collection?: string | null;
  folder?: string | null;
  status?: RunStatus | null;
  limit?: number | null;
};

export type ExportFormat = 'markdown' | 'json' | 'jsonl';

/** The runs asked before, here or with `quarry ask`, newest first. */
export async function historyList(query: HistoryQuery = {}): Promise<RunSummary[]> {
  return call<RunSummary[]>('history_list', { query });
}

/** One run with its answer, citations and events. */
export async function historyShow(id: number): Promise<HistoryRun> {
  return call<HistoryRun>('history_show', { id });
}

/** The runs whose question or answer hold the words; every run for an empty text. */
export async function historySearch(text: string): Promise<RunSummary[]> {
  return call<RunSummary[]>('history_search', { text });
}

/** Forgets a run and its events. */
export async function historyRemove(id: number): Promise<void> {
  return call<void>('history_rm', { id });
}

/** Saves a run where the person chooses; the path written, or null when they cancel. */
export async function historyExport(id: number, format: ExportFormat): Promise<string | null> {
  return call<string | null>('history_export', { id, format });
}

/** What a model download reports while it runs (commands::models::DownloadEvent). */
export type DownloadEvent =
  | {
      type: 'progress';
      /** `verify`: the sha256 check of what was downloaded. */
      phase: 'download' | 'verify';
      done: number;
      total: number | null;
      bytes_per_second: number;
      eta_seconds: number | null;
    }
  | { type: 'note'; message: string };

/** How a download ended when it did not fail (commands::models::DownloadOutcome). */
export type DownloadOutcome =
  | { status: 'installed'; path: string; size_bytes: number }
  | { status: 'paused'; partial_bytes: number }
  | { status: 'cancelled' };

/** Downloads a catalog model with the same code as `quarry models fetch`; resumes a paused one. */
export async function downloadModel(id: string, onEvent: (e: DownloadEvent) => void): Promise<DownloadOutcome> {
  if (!inTauri()) throw new Error(NOT_IN_APP_MESSAGE);
  const channel = new Channel<DownloadEvent>();
  channel.onmessage = onEvent;
  return call<DownloadOutcome>('download_model', { id, onEvent: channel });
}

/** Pauses a download, keeping what it has; true when one was running. */
export async function pauseDownload(id: string): Promise<boolean> {
  return call<boolean>('pause_download', { id });
}

/** Cancels a running or paused download and deletes what it downloaded. */
export async function cancelDownload(id: string): Promise<void> {
  return call<void>('cancel_download', { id });
}

/** Deletes a model's file (an imported one is only forgotten); the bytes freed. */
export async function deleteModel(id: string): Promise<number> {
  return call<number>('delete_model', { id });
}

/** "Import a GGUF": the native file dialog, then the import; the new model's id, or null. */
export async function importModel(): Promise<string | null> {
  return call<string | null>('import_model');
}

/** Where a role's model runs (commands::settings). */
export type ModelSource = 'local' | 'endpoint';

export type ModelSetting = {
  source: ModelSource;
  /** A catalog id for a local model ('' is the default), or the model's name at the endpoint. */
  model: string;
  url: string;
  /** Whether an API key is stored; the key itself never reaches the window. */
  has_key: boolean;
};

export type Theme = 'light' | 'dark' | 'system';

export type Settings = {
  root: ModelSetting;
  sub: ModelSetting;
  /** null: the engine's own choice. */
  threads: number | null;
  ctx_size: number;
  gpu_layers: number;
  budgets: { max_iterations: number; max_sub_calls: number; max_seconds: number };
  ocr: boolean;
  theme: Theme;
};

/** A key per role: null keeps the stored one, '' removes it. */
export type SaveSettings = { settings: Settings; root_key: string | null; sub_key: string | null };

export async function getSettings(): Promise<Settings> {
  return call<Settings>('get_settings');
}

/** Saves the settings (and keys); the settings as now stored. */
export async function saveSettings(request: SaveSettings): Promise<Settings> {
  return call<Settings>('save_settings', { request });
}

/** Asks the role's endpoint for one token; a sentence saying it answered. */
export async function testConnection(role: 'root' | 'sub', setting: ModelSetting): Promise<string> {
  return call<string>('test_model_connection', { role, setting });
}
