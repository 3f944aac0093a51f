import { describe, expect, it } from 'vitest';
import { applyEvent, emptyRun, outputSummary, stopLabel } from './run';
import type { ReplResult } from '../ipc';

const result = (over: Partial<ReplResult>): ReplResult => ({
  stdout: '',
  stderr: '',
  error: null,
  value: null,
  final_answer: null,
  restarted: false,
  ...over,
});

describe('run view', () => {
  it('groups code and output by turn and tallies sub-calls', () => {
    const v = emptyRun();
    applyEvent(v, { type: 'iteration_started', index: 1 });
    applyEvent(v, { type: 'model_delta', text: '```repl\n' });
    applyEvent(v, { type: 'code_block', iteration: 1, index: 1, code: "grep('x')" });
    applyEvent(v, { type: 'sub_call_started', id: 1, prompt_preview: 'p', prompt_chars: 1 });
    applyEvent(v, { type: 'sub_call_finished', id: 1, ok: false, response_preview: '', seconds: 1 });
    applyEvent(v, { type: 'repl_result', iteration: 1, index: 1, result: result({ stdout: 'a.txt 2 x\n' }) });
    applyEvent(v, { type: 'answer', text: '42', source: 'code' });
    applyEvent(v, { type: 'final', stop_reason: 'final', iterations: 1, sub_calls: 1, seconds: 3 });
    expect(v.steps).toEqual([{ index: 1, blocks: [{ code: "grep('x')", output: 'a.txt 2 x', failed: false }] }]);
    expect(v.streamed).toBe('');
    expect(v.subCalls).toEqual({ started: 1, finished: 1, failed: 1 });
    expect(v.answer).toBe('42');
    expect(v.final?.iterations).toBe(1);
  });

  it('streams a one-pass answer as text', () => {
    const v = emptyRun();
    applyEvent(v, { type: 'model_delta', text: 'The code ' });
    applyEvent(v, { type: 'model_delta', text: 'is 7391.' });
    expect(v.streamed).toBe('The code is 7391.');
  });

  it('summarises output: errors shown, long output cut, silence said', () => {
    expect(outputSummary(result({}))).toBe('(no output)');
    expect(outputSummary(result({ error: 'NameError: x' }))).toBe('NameError: x');
    const long = outputSummary(result({ stdout: 'y'.repeat(5000) }));
    expect(long).toContain('… 3800 more characters');
    expect(stopLabel('max_iterations')).toBe('stopped at the turn limit');
    expect(stopLabel('final')).toBe('answered');
  });
});
