// A small line-oriented RPC server around one headless Debian chromium, for the Python tests.
//
// Launching chromium costs a second or two, so the tests start this once per session and
// send it commands: one JSON object per stdin line, one JSON reply per stdout line.
// Every command works on "the page" (opened by `open`, replaced by the next `open`), and
// the page's console errors, uncaught exceptions and dialogs are collected so that a test
// can assert that a reader failed silently or not at all.
//
//   {"op":"open","url":"file:///...","dialog":"answer to a prompt"}
//   {"op":"upload","selector":"input[type=file]","file":"/path"}
//   {"op":"waitTitle","notEqual":"speedscope","timeout":20000}
//   {"op":"eval","expr":"document.title"}          (an expression; promises are awaited)
//   {"op":"click","selector":"...","x":..,"y":..}   (selector or page coordinates)
//   {"op":"download","selector":"text=Export","path":"/tmp/out.json"}
//   {"op":"screenshot","path":"/tmp/x.png"}
//   {"op":"log"}   -> {"console": [...], "pageErrors": [...], "dialogs": [...]}
//
// Replies: {"ok":true,"value":...} or {"ok":false,"error":"..."}.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.FLAMEKIT_CHROMIUM || '/usr/bin/chromium';
// speedscope renders with WebGL and silently shows nothing without it: SwiftShader gives
// headless chromium a software WebGL. The rest keeps chromium off the network.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-dev-shm-usage',
];

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
let page = null;
let log = { console: [], pageErrors: [], dialogs: [] };
let dialogAnswer = null;

async function open(url, answer) {
  if (page) await page.close();
  log = { console: [], pageErrors: [], dialogs: [] };
  dialogAnswer = answer ?? null;
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') log.console.push(m.text()); });
  page.on('pageerror', (e) => log.pageErrors.push(String(e && e.stack || e)));
  page.on('dialog', async (d) => {
    log.dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === 'prompt' && dialogAnswer !== null) await d.accept(dialogAnswer);
    else await d.dismiss();
  });
  await page.goto(url, { waitUntil: 'load' });
  return true;
}

const ops = {
  open: (c) => open(c.url, c.dialog),
  setDialog: (c) => { dialogAnswer = c.dialog ?? null; return true; },
  upload: (c) => page.setInputFiles(c.selector, c.file).then(() => true),
  waitTitle: (c) => page.waitForFunction(
    (t) => document.title !== t, c.notEqual, { timeout: c.timeout ?? 20000 },
  ).then(() => page.title()),
  eval: (c) => page.evaluate(c.expr),
  click: (c) => (c.selector
    ? page.click(c.selector, { timeout: c.timeout ?? 10000 })
    : page.mouse.click(c.x, c.y)).then(() => true),
  download: async (c) => {
    const [dl] = await Promise.all([
      page.waitForEvent('download', { timeout: c.timeout ?? 20000 }),
      page.click(c.selector),
    ]);
    await dl.saveAs(c.path);
    return c.path;
  },
  screenshot: (c) => page.screenshot({ path: c.path, fullPage: !!c.fullPage }).then(() => c.path),
  wait: (c) => new Promise((r) => setTimeout(() => r(true), c.ms ?? 100)),
  log: () => log,
};

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
process.stdout.write(JSON.stringify({ ok: true, value: 'ready' }) + '\n');
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    const cmd = JSON.parse(line);
    const fn = ops[cmd.op];
    if (!fn) throw new Error(`unknown op ${cmd.op}`);
    reply = { ok: true, value: (await fn(cmd)) ?? null };
  } catch (e) {
    reply = { ok: false, error: String(e && e.message || e) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
}
await browser.close();
