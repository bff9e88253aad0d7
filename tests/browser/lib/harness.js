'use strict';
// What every browser end-to-end suite shares: headless Chromium started
// with no background networking and every request off loopback aborted and
// counted; the servers the suites drive (started on 127.0.0.1 port 0, found
// through their port files); a capture server standing in for an OAuth
// client's redirect URI; the scenario runner and the lines CI reads:
//   browser-e2e: PASS <scenario> / FAIL <scenario>: <why>
//   browser-e2e: ran N scenarios in Chromium <version> (<suite>: all passed)
//   browser-e2e: SKIPPED: <suite>: <reason>   (exit 77: no Chromium to run)
// Nothing here waits for time to pass: page waits are Playwright's
// auto-waits, and polling (port files, process exits) is bounded.

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const SKIP_EXIT_CODE = 77;
// A bound on every wait, not an expectation: a healthy run takes a fraction
// of it.
const WAIT_MS = 20000;

const SUITE = path.basename(process.argv[1] || 'browser-e2e', '.js');

function log(line) {
  console.log(`browser-e2e: ${line}`);
}

// A line CI shows after the ctest run: besides stdout, appended to the file
// BROWSER_E2E_SUMMARY names (tests/browser/CMakeLists.txt). Its directory is
// made again if it is gone: another ctest run in the same build tree removes
// it when it starts. A summary that cannot be written fails nothing.
function summarize(line) {
  log(line);
  const file = process.env.BROWSER_E2E_SUMMARY;
  if (!file) return;
  try {
    fs.mkdirSync(path.dirname(file), {recursive: true});
    fs.appendFileSync(file, `browser-e2e: ${line}\n`);
  } catch (error) {
    console.error(`browser-e2e: could not append to ${file}: ${error.code}`);
  }
}

function skip(reason) {
  summarize(`SKIPPED: ${SUITE}: ${reason}`);
  process.exit(SKIP_EXIT_CODE);
}

function firstLine(text) {
  return String(text).split('\n').find((l) => l.trim() !== '') || '';
}

// Playwright's messages without their terminal colours.
function plain(text) {
  return String(text).replace(/\x1b\[[0-9;]*m/g, '');
}

function isLoopbackHost(hostname) {
  return hostname === '127.0.0.1' || hostname === 'localhost' ||
      hostname === '[::1]';
}

// The switches that keep Chromium off the network. Playwright adds most of
// them itself (with --headless and a --disable-features list that turns off
// Translate, OptimizationHints and the like); they are repeated so that the
// intent reads here. The binary is Debian's /usr/lib/chromium/chromium, not
// the /usr/bin/chromium wrapper, which adds Google API keys and
// --enable-remote-extensions.
function chromiumArgs() {
  const args = [
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-default-apps',
    '--disable-domain-reliability',
    '--metrics-recording-only',
    '--disable-breakpad',
    '--disable-client-side-phishing-detection',
    '--no-pings',
    '--no-proxy-server',
    '--dns-prefetch-disable',
    '--disable-dev-shm-usage',
    // Below the route guard: any host other than loopback does not resolve,
    // whoever asks (the browser itself included).
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, ' +
        'EXCLUDE 127.0.0.1',
  ];
  // Chromium's sandbox refuses to run as root.
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return args;
}

// Starts Chromium, or exits 77 with the reason when it cannot start at all
// (the only reason a suite skips).
async function launchChromium() {
  const executablePath = process.env.TOKENBROKER_CHROMIUM;
  if (!executablePath || !fs.existsSync(executablePath)) {
    skip(`no Chromium at ${executablePath || '(TOKENBROKER_CHROMIUM unset)'}`);
  }
  // Not a skip: run.sh installs playwright-core; if it is missing, that
  // failed.
  const {chromium} = require('playwright-core');
  try {
    return await chromium.launch({
      executablePath,
      headless: true,
      args: chromiumArgs(),
      timeout: WAIT_MS,
    });
  } catch (error) {
    skip(`Chromium (${executablePath}) did not start: ${
        firstLine(error.message)}`);
  }
}

// Browser contexts whose every request (pages, redirects, subresources,
// WebSockets) is checked: loopback goes through, anything else is aborted
// and recorded in `offLoopback`. A redirect is followed inside the network
// stack, where no route handler sees it: its target is recorded from the
// context's request event, and the host resolver rule (chromiumArgs) keeps
// it from resolving.
class Guard {
  constructor() {
    this.offLoopback = [];
    this.counted = new WeakSet();
  }

  count(request) {
    if (this.counted.has(request)) return;
    this.counted.add(request);
    this.offLoopback.push(request.url());
    log(`stopped a request off loopback: ${request.url()} (from ${
        frameUrl(request)})`);
  }

  async newContext(browser) {
    const context = await browser.newContext();
    context.setDefaultTimeout(WAIT_MS);
    context.setDefaultNavigationTimeout(WAIT_MS);
    await context.route('**', (route) => {
      if (this.allows(route.request().url())) return route.continue();
      this.count(route.request());
      return route.abort('blockedbyclient');
    });
    context.on('request', (request) => {
      if (!this.allows(request.url())) this.count(request);
    });
    await context.routeWebSocket(/.*/, (ws) => {
      if (this.allows(ws.url())) return ws.connectToServer();
      this.offLoopback.push(ws.url());
      log(`blocked a WebSocket off loopback: ${ws.url()}`);
      return ws.close();
    });
    return context;
  }

  allows(url) {
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      return false;
    }
    if (parsed.protocol === 'data:' || parsed.protocol === 'about:') {
      return true;
    }
    return isLoopbackHost(parsed.hostname);
  }
}

function frameUrl(request) {
  try {
    return withoutQuery(request.frame().url());
  } catch {
    return 'no frame';
  }
}

// A child process serving on 127.0.0.1 port 0; stdout and stderr go to
// WORK/NAME.log.
class Server {
  constructor(name, binary, args, workDir) {
    this.name = name;
    this.logPath = path.join(workDir, `${name}.log`);
    const logFd = fs.openSync(this.logPath, 'w');
    this.child =
        childProcess.spawn(binary, args, {stdio: ['ignore', logFd, logFd]});
    fs.closeSync(logFd);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve({code, signal}));
      this.child.on('error', (error) => resolve({code: null, error}));
    });
    this.running = true;
    this.exited.then(() => {
      this.running = false;
    });
    // However the suite ends, the server does not outlive it.
    process.on('exit', () => {
      if (this.running) this.child.kill('SIGTERM');
    });
  }

  // Bounded polling: 200 looks, 100 ms apart; gives up at once if the
  // process exits.
  async waitForPortFile(file) {
    for (let i = 0; i < 200 && this.running; ++i) {
      try {
        const text = fs.readFileSync(file, 'utf8').trim();
        if (/^\d+$/.test(text)) return Number(text);
      } catch {
        // Not written yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(
        `${this.name} did not write ${path.basename(file)}; ` +
        `its log:\n${this.log()}`);
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  // SIGTERM, then the exit status; the servers exit 0 on SIGTERM.
  async stop() {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }

  // Throws if any of `secrets` (fake values the test knows) is in the log.
  assertLogHasNone(secrets) {
    const text = this.log();
    const found = Object.entries(secrets)
                      .filter(([, value]) => value && text.includes(value))
                      .map(([label]) => label);
    assert.deepEqual(found, [], `${this.name}'s log holds ${found.join(', ')}`);
  }
}

// The emulator binary serving `fixture` on 127.0.0.1 port 0 (its log in
// WORK/emulator.log), once it listens: its Server with `url` (the base URL)
// and `issuer` (as its discovery document says). If this throws, the
// process still goes when the suite exits.
async function startEmulator(binary, fixture, workDir) {
  const portFile = path.join(workDir, 'emulator.port');
  const emulator = new Server(
      'emulator', binary,
      [
        '--fixture', fixture, '--listen', '127.0.0.1:0', '--port_file', portFile
      ],
      workDir);
  emulator.url = `http://127.0.0.1:${await emulator.waitForPortFile(portFile)}`;
  const discovery = await fetch(`${
      emulator.url}/accounts/api/v2/oauth2/.well-known/openid-configuration`);
  assert.equal(discovery.status, 200, 'the emulator\'s discovery document');
  emulator.issuer = (await discovery.json()).issuer;
  return emulator;
}

// What the suites use of the demo fixture (emulator/fixtures/demo.yaml):
// Acme Corp, its members-only user app (Environment Viewer) and two users,
// one of Acme Corp and one outside it (fake passwords only the emulator
// knows).
const DEMO = {
  acmeOrg: 'c6e1c1b0-4b2f-4c6e-9d8a-1a2b3c4d5e6f',
  acmeSandbox: '2b8c4d6e-9f1a-4b3c-8d5e-7a6b5c4d3e22',
  envViewer: {
    clientId: 'env-viewer-app',
    name: 'Environment Viewer',
    scope: 'view:environment',
    redirectUris: [
      'http://127.0.0.1:9090/oauth/callback',
      'http://localhost:9090/oauth/callback',
    ],
  },
  alice: {username: 'alice.acme', password: 'alice-demo-password'},
  outsider: {username: 'bob.globex', password: 'bob-demo-password'},
};

// The emulator's sign-in form posts here.
const EMULATOR_LOGIN_PATH = '/accounts/api/v2/oauth2/authorize/login';

// On the emulator's sign-in page: checks where the form posts, fills in
// `user` ({username, password}) and clicks "Sign in".
async function emulatorSignIn(page, user) {
  const form = page.locator('form:has(#password)');
  const action = await form.getAttribute('action');
  assert.equal(
      new URL(action, page.url()).pathname, EMULATOR_LOGIN_PATH,
      'the sign-in form posts to the login endpoint');
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.getByRole('button', {name: 'Sign in'}).click();
}

// On the emulator's consent page: checks that it names connected app `app`
// ({name, scope}) and lists its scope, then clicks `decision` (Approve or
// Deny).
async function emulatorConsent(page, app, decision) {
  const heading = page.getByRole('heading', {level: 1});
  assert.equal(
      (await heading.innerText()).trim(),
      `Allow ${app.name} to access your Anypoint account?`);
  const scopes = await page.locator('li').allInnerTexts();
  assert.ok(
      scopes.some((s) => s.includes(app.scope)),
      `the consent page lists ${app.scope}: ${JSON.stringify(scopes)}`);
  const button = page.getByRole('button', {name: decision, exact: true});
  assert.equal(await button.getAttribute('name'), 'decision');
  assert.equal(await button.getAttribute('value'), decision.toLowerCase());
  await button.click();
}

// An OAuth client's redirect URI on 127.0.0.1: records every request to
// CALLBACK_PATH (its query) and answers a plain page that echoes nothing.
class CaptureServer {
  static CALLBACK_PATH = '/oauth/callback';

  async start() {
    this.callbacks = [];
    this.waiters = [];
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://127.0.0.1');
      if (url.pathname !== CaptureServer.CALLBACK_PATH) {
        res.writeHead(404, {'Content-Type': 'text/plain'}).end();
        return;
      }
      const params = Object.fromEntries(url.searchParams);
      this.callbacks.push(params);
      for (const resolve of this.waiters.splice(0)) resolve();
      res.writeHead(200, {
           'Content-Type': 'text/html; charset=utf-8',
           'Cache-Control': 'no-store'
         })
          .end(
              '<!doctype html><title>Callback</title>' +
              '<h1>Callback received</h1>');
    });
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    this.callbackUrl =
        `http://127.0.0.1:${this.port}${CaptureServer.CALLBACK_PATH}`;
    return this;
  }

  // The callback after the first `seen`, once it has arrived (bounded).
  async callbackAfter(seen) {
    const deadline = setTimeout(() => {
      for (const resolve of this.waiters.splice(0)) resolve();
    }, WAIT_MS);
    try {
      while (this.callbacks.length <= seen) {
        const before = this.callbacks.length;
        await new Promise((resolve) => this.waiters.push(resolve));
        if (this.callbacks.length === before) {
          throw new Error(`no request reached ${this.callbackUrl}`);
        }
      }
      return this.callbacks[seen];
    } finally {
      clearTimeout(deadline);
    }
  }

  async stop() {
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// A transparent HTTP relay on 127.0.0.1 in front of `target` (a base URL)
// that records, without logging them, the string values of `fields` in the
// form and JSON bodies passing through either way: the secrets a server
// hands its client (tokens in a token answer) or the client sends (a code,
// a PKCE verifier), which a suite then looks for in logs. Bodies are held
// whole; meant for the small answers of an authorization server.
class RecordingRelay {
  constructor(target, fields) {
    this.target = new URL(target);
    this.fields = fields;
    this.values = Object.fromEntries(fields.map((field) => [field, []]));
  }

  async start() {
    this.server = http.createServer((req, res) => this.relay(req, res));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.port = this.server.address().port;
    this.baseUrl = `http://127.0.0.1:${this.port}`;
    return this;
  }

  // Every value of `field` seen so far, oldest first.
  seen(field) {
    return this.values[field];
  }

  relay(req, res) {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      this.record(req.headers['content-type'], body);
      const upstream = http.request(
          {
            hostname: this.target.hostname,
            port: this.target.port,
            method: req.method,
            path: req.url,
            headers: req.headers,
          },
          (answer) => {
            const parts = [];
            answer.on('data', (part) => parts.push(part));
            answer.on('end', () => {
              const answerBody = Buffer.concat(parts);
              this.record(answer.headers['content-type'], answerBody);
              const headers = {...answer.headers};
              delete headers['transfer-encoding'];
              delete headers.connection;
              headers['content-length'] = answerBody.length;
              res.writeHead(answer.statusCode, headers).end(answerBody);
            });
          });
      upstream.on('error', (error) => {
        res.writeHead(502, {'Content-Type': 'text/plain'})
            .end(`relay: ${error.code || 'upstream failed'}`);
      });
      upstream.end(body);
    });
  }

  record(contentType, body) {
    if (body.length === 0) return;
    let values = {};
    try {
      if (/json/.test(contentType || '')) {
        values = JSON.parse(body.toString('utf8'));
      } else if (/x-www-form-urlencoded/.test(contentType || '')) {
        values = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
      }
    } catch {
      return;  // Not what it says it is: nothing to record.
    }
    if (values === null || typeof values !== 'object') return;
    for (const field of this.fields) {
      const value = values[field];
      if (typeof value === 'string' && value !== '' &&
          !this.values[field].includes(value)) {
        this.values[field].push(value);
      }
    }
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

function base64url(buffer) {
  return buffer.toString('base64url');
}

function randomToken(bytes = 32) {
  return base64url(crypto.randomBytes(bytes));
}

// RFC 7636: a verifier and its S256 challenge.
function pkcePair() {
  const verifier = randomToken(32);
  const challenge =
      base64url(crypto.createHash('sha256').update(verifier).digest());
  return {verifier, challenge};
}

// The suite's --key value arguments; throws unless every `required` key is
// there.
function parseArgs(required) {
  const argv = process.argv.slice(2);
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`usage: ${SUITE}.js ${
          required.map((k) => `--${k} VALUE`).join(' ')}`);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const key of required) {
    if (!args[key]) throw new Error(`--${key} is required`);
  }
  return args;
}

// Copies `source` to `target` with every occurrence of each key of
// `replacements` replaced by its value; throws if a key does not occur (the
// copy would not say what the test means). Returns the new text.
function copyReplacing(source, target, replacements) {
  let text = fs.readFileSync(source, 'utf8');
  for (const [from, to] of Object.entries(replacements)) {
    if (!text.includes(from)) throw new Error(`${source} has no ${from}`);
    text = text.split(from).join(to);
  }
  fs.writeFileSync(target, text);
  return text;
}

// The client secret of `clientId` in an emulator fixture's text (its apps
// are `  - client_id: ID` items followed by their keys, indented by four).
function fixtureClientSecret(fixtureText, clientId) {
  const item = fixtureText.match(
      new RegExp(`- client_id: ${clientId}\\n((?: {4}.*\\n)*)`));
  const secret = item && item[1].match(/^ {4}client_secret: (\S+)$/m);
  if (!secret) throw new Error(`the fixture has no secret for ${clientId}`);
  return secret[1];
}

// A temporary directory, removed when the suite exits, however it ends.
function makeWorkDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'browser-e2e-'));
  process.on('exit', () => fs.rmSync(dir, {recursive: true, force: true}));
  return dir;
}

// A URL without its query and fragment, which may hold a code, a state or
// a one-time link's key: for messages.
function withoutQuery(url) {
  try {
    const parsed = new URL(url);
    if (!parsed.search && !parsed.hash) return url;
    return `${parsed.origin}${parsed.pathname}?...`;
  } catch {
    return '(not a URL)';
  }
}

// What a page shows, for a failure message (length-capped; the URL without
// its query).
async function describePage(page) {
  const url = withoutQuery(page.url());
  try {
    const text = (await page.locator('body').innerText({timeout: 2000}))
                     .replace(/\s+/g, ' ')
                     .slice(0, 400);
    return `${url} shows: ${text}`;
  } catch {
    return `${url} (no body)`;
  }
}

// Runs the scenarios in order, each with a page in a fresh guarded context
// (no cookie shared). A scenario is {name, run(t)} where t.page is the page,
// t.newPage() opens another page in another fresh context and t.guard is the
// shared guard. Returns the number of failures; prints the summary line.
async function runScenarios(browser, guard, scenarios) {
  let failures = 0;
  for (const scenario of scenarios) {
    const contexts = [];
    const pages = [];
    const newPage = async () => {
      const context = await guard.newContext(browser);
      contexts.push(context);
      const page = await context.newPage();
      pages.push(page);
      return page;
    };
    try {
      const t = {guard, newPage, page: await newPage()};
      await scenario.run(t);
      log(`PASS ${scenario.name}`);
    } catch (error) {
      ++failures;
      log(`FAIL ${scenario.name}: ${plain(error.message)}`);
      for (const page of pages) {
        if (page.url() !== 'about:blank') {
          log(`  page ${await describePage(page)}`);
        }
      }
    } finally {
      for (const context of contexts) await context.close();
    }
  }
  const outcome = failures > 0 ? `${failures} FAILED` : 'all passed';
  summarize(`ran ${scenarios.length} scenarios in Chromium ${
      browser.version()} (${SUITE}: ${outcome})`);
  return failures;
}

// A scenario that passes only if no page of `guard` tried to leave loopback
// so far; it belongs last.
function noRequestLeftLoopback(guard) {
  return {
    name: 'no request left loopback',
    run: async () => {
      assert.deepEqual(
          guard.offLoopback, [],
          `${guard.offLoopback.length} requests off loopback`);
    },
  };
}

// A scenario proving the guard works: a page of a separate guard asks for a
// TEST-NET-1 address (RFC 5737) and must be stopped and counted.
function guardStopsOffLoopback(browser) {
  return {
    name: 'the guard aborts and counts a request off loopback, and ' +
        'counts a redirect off loopback, which does not resolve',
    run: async () => {
      const probe = new Guard();
      const context = await probe.newContext(browser);
      // A loopback server redirecting off loopback.
      const away = 'http://192.0.2.2/away';
      const server = http.createServer((req, res) => {
        res.writeHead(302, {Location: away}).end();
      });
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const page = await context.newPage();
        await assert.rejects(page.goto('http://192.0.2.1/'));
        await assert.rejects(
            page.goto(`http://127.0.0.1:${server.address().port}/`),
            /ERR_NAME_NOT_RESOLVED/);
        assert.deepEqual(probe.offLoopback, ['http://192.0.2.1/', away]);
      } finally {
        await context.close();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  };
}

// Runs main(), cleaning up with `cleanup` whatever happens; exit status 1 on
// any failure, 0 when every scenario passed.
function runMain(main) {
  main().then((failures) => process.exit(failures > 0 ? 1 : 0), (error) => {
    log(plain(error.stack || error));
    summarize(`FAILED: ${SUITE}: ${plain(firstLine(error.message || error))}`);
    process.exit(1);
  });
}

module.exports = {
  CaptureServer,
  DEMO,
  Guard,
  RecordingRelay,
  Server,
  WAIT_MS,
  assert,
  copyReplacing,
  emulatorConsent,
  emulatorSignIn,
  fixtureClientSecret,
  guardStopsOffLoopback,
  launchChromium,
  log,
  makeWorkDir,
  noRequestLeftLoopback,
  parseArgs,
  pkcePair,
  randomToken,
  runMain,
  runScenarios,
  startEmulator,
  withoutQuery,
};
