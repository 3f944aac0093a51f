// Desktop smoke test: drives the REAL Quarry window (Rust backend + bundled ui/dist) through
// tauri-driver -> WebKitWebDriver. Run it through run.sh, which provides Xvfb and the driver.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { remote } from 'webdriverio';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const APP = process.env.QUARRY_APP || join(REPO, 'target', 'release', 'quarry-desktop');
const OUT = process.env.QUARRY_E2E_OUT || join(REPO, 'target', 'e2e');
const PORT = Number(process.env.QUARRY_E2E_PORT || 4444);
const MODEL_ID = 'qwen2.5-coder-0.5b-instruct-q4_k_m';
const BACKEND_TIMEOUT_MS = 30_000;
// Starting the engine and a few RLM turns of the 0.5B model on two CPU cores.
const ANSWER_TIMEOUT_MS = 300_000;

/** @type {WebdriverIO.Browser | undefined} */
let browser;

/** Whole-screen capture with ImageMagick's `import`, when it is installed (best effort). */
function screenCapture(file) {
  if (!process.env.DISPLAY) return;
  try {
    execFileSync('import', ['-window', 'root', file], { stdio: 'ignore', timeout: 20_000 });
    console.log(`screen screenshot: ${file}`);
  } catch (e) {
    console.log(`screen screenshot skipped (${e.code === 'ENOENT' ? 'import not installed' : e.message})`);
  }
}

describe('Quarry desktop window', () => {
  before(async () => {
    assert.ok(existsSync(APP), `app binary not found: ${APP} (set QUARRY_APP)`);
    mkdirSync(OUT, { recursive: true });
    browser = await remote({
      hostname: '127.0.0.1',
      port: PORT,
      logLevel: 'warn',
      connectionRetryTimeout: 60_000,
      connectionRetryCount: 0,
      capabilities: {
        'tauri:options': { application: APP },
        // WebKitWebDriver speaks classic WebDriver only; without this wdio 9 tries BiDi and fails.
        'wdio:enforceWebDriverClassic': true,
      },
    });
  });

  after(async () => {
    if (!browser) return;
    // WebKitWebDriver's own screenshot command hangs under Xvfb (its request times out after
    // 60 s), so the whole screen is captured with ImageMagick instead.
    screenCapture(join(OUT, 'screen.png'));
    await browser.deleteSession();
  });

  it('has the title "Quarry"', async () => {
    assert.equal(await browser.getTitle(), 'Quarry');
  });

  it('shows the Quarry heading', async () => {
    const h1 = await browser.$('h1');
    await h1.waitForDisplayed({ timeout: 10_000 });
    assert.equal(await h1.getText(), 'Quarry');
  });

  it('lists the model catalogue from the Rust backend', async () => {
    const row = await browser.$(`#models .model[data-model-id="${MODEL_ID}"]`);
    try {
      await row.waitForExist({ timeout: BACKEND_TIMEOUT_MS });
    } catch (e) {
      const alert = await browser.$('#models [role="alert"]');
      const why = (await alert.isExisting()) ? `; the UI shows: ${await alert.getText()}` : '';
      throw new Error(`no model row ${MODEL_ID} within ${BACKEND_TIMEOUT_MS / 1000} s${why}`, { cause: e });
    }
    const status = (await row.$('.status').getText()).trim();
    assert.ok(
      status === 'installed' || status === 'not installed',
      `unexpected status badge text: ${JSON.stringify(status)}`,
    );
    assert.equal((await row.$('code').getText()).trim(), MODEL_ID);
  });

  it('downloads a model from the Hub with progress to done, through the fetch code', async () => {
    // run.sh registered this model and serves its file from a local stand-in for the Hub.
    const id = process.env.QUARRY_E2E_TEST_MODEL;
    assert.ok(id, 'QUARRY_E2E_TEST_MODEL is unset: run this test through run.sh');
    const row = `#models .model[data-model-id="${id}"]`;
    await (await browser.$(row)).waitForExist({ timeout: BACKEND_TIMEOUT_MS });
    assert.equal((await browser.$(`${row} .status`).getText()).trim(), 'not installed');
    await browser.execute(() => document.getElementById('models')?.scrollIntoView());
    screenCapture(join(OUT, 'models-first-run.png'));
    await (await browser.$(`${row} button.download`)).click();
    try {
      await browser.waitUntil(async () => (await browser.$(`${row} .status`).getText()).trim() === 'installed', {
        timeout: 120_000,
      });
    } catch (e) {
      const alert = await browser.$(`${row} [role="alert"]`);
      const why = (await alert.isExisting()) ? `; the UI shows: ${await alert.getText()}` : '';
      throw new Error(`${id} was not installed within 120 s${why}`, { cause: e });
    }
    assert.match(await (await browser.$('#models-note')).getText(), /installed and its sha256 checked/);
    assert.ok(
      existsSync(join(process.env.QUARRY_MODELS_DIR, `${id}.gguf`)),
      'the downloaded file is in the models folder',
    );
    assert.match(await (await browser.$(`${row} button.delete`)).getText(), /^Delete \(8\.0 MiB\)$/);
    await browser.execute(() => document.getElementById('models')?.scrollIntoView());
    screenCapture(join(OUT, 'models.png'));
  });

  it('answers a question about a folder with the real model, the REPL and checked sources', async () => {
    // The folder the CLI's RLM test uses: a needle that `grep` finds among five reports.
    const folder = mkdtempSync(join(tmpdir(), 'quarry-e2e-'));
    for (let i = 1; i <= 5; i++) {
      writeFileSync(join(folder, `report${i}.txt`), `Quarterly notes, part ${i}.\nRevenue grew in the north region.\n`);
    }
    writeFileSync(join(folder, 'memo.txt'), 'Facilities memo.\nThe storage room code is 7391.\nLights off at 8pm.\n');

    await (await browser.$('#folder-path')).setValue(folder);
    await (await browser.$('#question')).setValue('What is the storage room code?');
    await (await browser.$('#mode')).selectByAttribute('value', 'rlm');
    // CI fetches only the 0.5B model: it plays both roles here.
    await (await browser.$('#root-model')).selectByAttribute('value', MODEL_ID);
    await (await browser.$('#sub-model')).selectByAttribute('value', MODEL_ID);
    const ask = await browser.$('#ask');
    await browser.waitUntil(async () => await ask.isEnabled(), { timeout: 5_000, timeoutMsg: 'Ask stayed disabled' });
    await ask.click();

    const answer = await browser.$('#answer');
    try {
      await answer.waitForExist({ timeout: ANSWER_TIMEOUT_MS });
    } catch (e) {
      const alert = await browser.$('#ask-error');
      const why = (await alert.isExisting()) ? `; the UI shows: ${await alert.getText()}` : '';
      throw new Error(`no answer within ${ANSWER_TIMEOUT_MS / 1000} s${why}`, { cause: e });
    }
    screenCapture(join(OUT, 'answer.png'));
    const text = await (await answer.$('.answer-text')).getText();
    assert.match(text, /7391/, `answer: ${JSON.stringify(text)}`);
    assert.match(await (await browser.$('#stats')).getText(), /^rlm · answered/);
    // The run was shown as it happened: at least one turn with its code and output.
    assert.ok((await browser.$$('#run .step pre.code')).length >= 1, 'no code shown for the run');
    assert.ok((await browser.$$('#run .step pre.output')).length >= 1, 'no output shown for the run');
  });

  it('shows the app version in the footer', async () => {
    const version = await browser.$('#version');
    await browser.waitUntil(async () => (await version.getText()).length > 0, {
      timeout: BACKEND_TIMEOUT_MS,
      timeoutMsg: '#version stayed empty',
    });
    const text = await version.getText();
    assert.match(text, /^v\d/, `#version text: ${JSON.stringify(text)}`);
  });
});
