// What the History panel shows of the recorded runs: their status and time as people say them,
// grouped by the collection or folder they were asked of, and a stored run's events folded back
// into the same view the window drew live (lib/run.ts), so a past run looks as it did.
import type { HistoryRun, Mode, RunEvent, RunStatus, RunSummary } from '../ipc';
import { applyEvent, emptyRun, type RunView } from './run';

/** "done" -> "answered"; a run killed half-way is "interrupted", never lost. */
export function statusLabel(status: RunStatus): string {
  switch (status) {
    case 'done':
      return 'answered';
    case 'running':
      return 'running…';
    default:
      return status;
  }
}

const pad = (n: number) => String(n).padStart(2, '0');

/** "just now", "5 min ago", "3 h ago", else the local date and time "2026-12-02 17:07". */
export function formatWhen(ms: number, now: number = Date.now()): string {
  const ago = now - ms;
  if (ago >= 0 && ago < 60_000) return 'just now';
  if (ago >= 0 && ago < 3_600_000) return `${Math.floor(ago / 60_000)} min ago`;
  if (ago >= 0 && ago < 6 * 3_600_000) return `${Math.floor(ago / 3_600_000)} h ago`;
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The collection's name, else the folder's last component. */
export function placeLabel(run: Pick<RunSummary, 'collection' | 'folder'>): string {
  if (run.collection) return run.collection;
  const parts = run.folder.split(/[\\/]/).filter((p) => p.length > 0);
  return parts.length > 0 ? parts[parts.length - 1] : run.folder;
}

export type RunGroup = { place: string; folder: string; runs: RunSummary[] };

/** Runs grouped by collection or folder; the group with the newest run first, and runs keep
 * their order (newest first) within a group. */
export function groupByPlace(runs: RunSummary[]): RunGroup[] {
  const groups: RunGroup[] = [];
  const byKey = new Map<string, RunGroup>();
  for (const run of runs) {
    const key = run.collection ? `c:${run.collection}` : `f:${run.folder}`;
    let g = byKey.get(key);
    if (!g) {
      g = { place: placeLabel(run), folder: run.folder, runs: [] };
      byKey.set(key, g);
      groups.push(g);
    }
    g.runs.push(run);
  }
  return groups;
}

/** A stored run's events folded into the live run's view: its turns, code, output, notices. */
export function viewOf(events: RunEvent[]): RunView {
  const view = emptyRun();
  for (const e of events) applyEvent(view, e);
  return view;
}

/** What re-asking a run fills the Ask form with. */
export function reaskOf(run: Pick<HistoryRun, 'folder' | 'question' | 'mode'>): {
  folder: string;
  question: string;
  mode: Mode;
} {
  const modes: Mode[] = ['auto', 'rlm', 'direct', 'rag'];
  const mode = modes.includes(run.mode as Mode) ? (run.mode as Mode) : 'auto';
  return { folder: run.folder, question: run.question, mode };
}

/** A search snippet split into plain and matched parts: "[notice] period" -> marks. */
export function snippetParts(snippet: string): { text: string; match: boolean }[] {
  const parts: { text: string; match: boolean }[] = [];
  const re = /\[([^\]]*)\]/g;
  let last = 0;
  for (let m = re.exec(snippet); m !== null; m = re.exec(snippet)) {
    if (m.index > last) parts.push({ text: snippet.slice(last, m.index), match: false });
    parts.push({ text: m[1], match: true });
    last = m.index + m[0].length;
  }
  if (last < snippet.length) parts.push({ text: snippet.slice(last), match: false });
  return parts;
}
