// Folding a run's events into what the window shows: one step per root turn with its code and
// output, the sub-call tally, notices, and the answer streaming in for the one-pass modes.
import type { ReplResult, RunEvent } from '../ipc';

export type Block = { code: string; output: string | null; failed: boolean };
export type Step = { index: number; blocks: Block[] };

export type RunView = {
  steps: Step[];
  /** Text streamed by a one-pass mode (direct, rag): the answer as it is written. */
  streamed: string;
  subCalls: { started: number; finished: number; failed: number };
  notices: string[];
  errors: string[];
  answer: string | null;
  final: { stop_reason: string; iterations: number; sub_calls: number; seconds: number } | null;
};

export function emptyRun(): RunView {
  return {
    steps: [],
    streamed: '',
    subCalls: { started: 0, finished: 0, failed: 0 },
    notices: [],
    errors: [],
    answer: null,
    final: null,
  };
}

const OUTPUT_CHARS = 1200;

/** What a block printed, shortened for the screen (the REPL's own budget is larger). */
export function outputSummary(r: ReplResult): string {
  const parts = [r.stdout.trimEnd(), r.value ?? '', r.stderr.trimEnd(), r.error ?? ''].filter((p) => p.length > 0);
  if (r.restarted) parts.push('(the REPL was restarted)');
  const text = parts.join('\n');
  if (text.length === 0) return '(no output)';
  return text.length <= OUTPUT_CHARS ? text : `${text.slice(0, OUTPUT_CHARS)}\n… ${text.length - OUTPUT_CHARS} more characters`;
}

/** Applies one event to `view` (in place, so Svelte's state proxy sees each change). */
export function applyEvent(view: RunView, e: RunEvent): void {
  switch (e.type) {
    case 'iteration_started':
      view.steps.push({ index: e.index, blocks: [] });
      break;
    case 'model_delta':
      // The loop's replies show as code blocks; only one-pass answers stream as text.
      if (view.steps.length === 0) view.streamed += e.text;
      break;
    case 'code_block': {
      const step = view.steps.find((s) => s.index === e.iteration);
      step?.blocks.push({ code: e.code, output: null, failed: false });
      break;
    }
    case 'repl_result': {
      const step = view.steps.find((s) => s.index === e.iteration);
      const block = step?.blocks[step.blocks.length - 1];
      if (block) {
        block.output = outputSummary(e.result);
        block.failed = e.result.error !== null;
      }
      break;
    }
    case 'sub_call_started':
      view.subCalls.started += 1;
      break;
    case 'sub_call_finished':
      view.subCalls.finished += 1;
      if (!e.ok) view.subCalls.failed += 1;
      break;
    case 'answer':
      view.answer = e.text;
      break;
    case 'final':
      view.final = { stop_reason: e.stop_reason, iterations: e.iterations, sub_calls: e.sub_calls, seconds: e.seconds };
      break;
    case 'notice':
      view.notices.push(e.message);
      break;
    case 'error':
      view.errors.push(e.message);
      break;
    default:
      break;
  }
}

/** "final" -> "answered", the limits as people say them. */
export function stopLabel(reason: string): string {
  switch (reason) {
    case 'final':
      return 'answered';
    case 'cancelled':
      return 'cancelled';
    case 'max_iterations':
      return 'stopped at the turn limit';
    case 'max_sub_calls':
      return 'stopped at the sub-call limit';
    case 'max_tokens':
      return 'stopped at the token limit';
    case 'wall_clock':
      return 'stopped at the time limit';
    case 'consecutive_errors':
      return 'stopped after repeated errors';
    default:
      return reason.replace(/_/g, ' ');
  }
}
