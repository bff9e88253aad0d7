'use strict';
// The broker's OAuth sign-in pages end to end in headless Chromium: the real
// token-broker and anypoint-emulator binaries, tokenbrokerctl as the
// independent client that mints the one-time link and then uses the grant.
//   node broker_oauth.js --broker BIN --emulator BIN --cli BIN
//                        --fixture emulator/fixtures/demo.yaml
// Run through run.sh, which installs playwright-core and finds Chromium.
//
// The broker reaches the emulator through a recording relay (its base_url;
// its issuer stays the emulator's) so that the test sees the refresh and
// access tokens, the code and the PKCE verifier the broker handles, and can
// look for every one of them in the logs. Each scenario ends by checking
// that no request left loopback and that neither server's log (the
// broker's audit included) holds any secret seen so far.

const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {
  // Chromium, and the guard that keeps it on loopback.
  Guard,
  guardStopsOffLoopback,
  launchChromium,
  noRequestLeftLoopback,
  // The servers, and the emulator's pages and fixture.
  RecordingRelay,
  Server,
  startEmulator,
  DEMO,
  emulatorConsent,
  emulatorSignIn,
  fixtureClientSecret,
  // The suite.
  WAIT_MS,
  assert,
  log,
  makeWorkDir,
  parseArgs,
  runMain,
  runScenarios,
} = require('./lib/harness');

const ACME_ORG = DEMO.acmeOrg;
// The broker's name of the app, and the emulator's connected app behind it:
// members of Acme Corp only.
const APP = 'viewer';
const CONNECTED_APP = DEMO.envViewer;
const ALICE = DEMO.alice;
const OUTSIDER = DEMO.outsider;

const ENVIRONMENTS = `/accounts/api/organizations/${ACME_ORG}/environments`;
// Outside view:environment: CloudHub needs read:applications.
const APPLICATIONS = '/cloudhub/api/applications';

async function main() {
  const args = parseArgs(['broker', 'emulator', 'cli', 'fixture']);
  const browser = await launchChromium();
  const work = makeWorkDir();
  const fixtureText = fs.readFileSync(args.fixture, 'utf8');
  // Values that must never reach a log; the scenarios add what they see.
  const secrets = {
    'alice\'s password': ALICE.password,
    'the outsider\'s password': OUTSIDER.password,
    'the client secret':
        fixtureClientSecret(fixtureText, CONNECTED_APP.clientId),
  };
  const guard = new Guard();
  const emulator = await startEmulator(args.emulator, args.fixture, work);
  let relay;
  let broker;
  try {
    const emulatorUrl = emulator.url;
    relay =
        await new RecordingRelay(emulatorUrl, [
          'access_token', 'refresh_token', 'id_token', 'code', 'code_verifier'
        ]).start();

    const grantsDir = path.join(work, 'grants');
    fs.mkdirSync(grantsDir, {mode: 0o700});
    fs.writeFileSync(
        path.join(work, 'k1'), crypto.randomBytes(32).toString('hex') + '\n',
        {mode: 0o600});
    fs.writeFileSync(
        path.join(work, 'viewer.secret'), secrets['the client secret'] + '\n',
        {mode: 0o600});
    // JSON is YAML.
    fs.writeFileSync(
        path.join(work, 'broker.yaml'),
        JSON.stringify(
            {
              listen: {grpc: '127.0.0.1:0', admin_http: '127.0.0.1:0'},
              log_level: 'debug',
              development: {insecure_plaintext: true},
              apps: [{
                name: APP,
                base_url: relay.baseUrl,
                issuer: emulator.issuer,
                grant_type: 'authorization_code',
                client_id: CONNECTED_APP.clientId,
                client_secret: {file: path.join(work, 'viewer.secret')},
                scopes: [CONNECTED_APP.scope],
                org_id: ACME_ORG,
              }],
              callers: [{
                name: 'anonymous',
                admin: true,
                grants: [{
                  app: APP,
                  scopes: ['*'],
                  users: ['*'],
                  routes: [
                    `GET /accounts/api/organizations/*/environments`,
                    'GET /accounts/api/me', `GET ${APPLICATIONS}`
                  ],
                }],
              }],
              grant_store: {
                directory: grantsDir,
                keys: [{id: 'k1', file: path.join(work, 'k1')}],
              },
              audit: {path: '-'},
            },
            null, 2));
    broker = new Server(
        'broker', args.broker,
        [
          '--config', path.join(work, 'broker.yaml'), '--listen', '127.0.0.1:0',
          '--port_file', path.join(work, 'broker.port'), '--admin_port_file',
          path.join(work, 'admin.port')
        ],
        work);
    // The admin port file is written before the gRPC one: both are there.
    const grpcPort =
        await broker.waitForPortFile(path.join(work, 'broker.port'));
    const adminPort =
        await broker.waitForPortFile(path.join(work, 'admin.port'));
    const pagesUrl = `http://127.0.0.1:${adminPort}`;

    // The broker derived its redirect URI from the bound port: register it.
    const registered = await fetch(
        `${emulatorUrl}/_emulator/apps/${CONNECTED_APP.clientId}/redirect-uris`,
        {
          method: 'POST',
          headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({redirect_uri: `${pagesUrl}/oauth/callback`}),
        });
    assert.equal(registered.status, 200, 'redirect URI registered');

    const flow = new BrokerFlow({
      cli: args.cli,
      grpcAddr: `127.0.0.1:${grpcPort}`,
      pagesUrl,
      relay,
      emulatorUrl,
      grantsDir,
      secrets,
      servers: [broker, emulator],
      guard,
    });
    const scenarios = [
      guardStopsOffLoopback(browser),
      {
        name: 'connect link, sign-in and Approve: the callback page names ' +
            'the app, alice.acme and view:environment; token, Call ' +
            'environments (200), Call outside the scope (403 shown) and ' +
            'apps work for alice.acme',
        run: (t) => flow.checked(() => flow.approve(t)),
      },
      {
        name: 'Deny on the consent page: "Access was not granted", nothing ' +
            'stored',
        run: (t) => flow.checked(() => flow.deny(t)),
      },
      {
        name: 'a replayed callback URL is refused; still one grant',
        run: (t) => flow.checked(() => flow.replay(t)),
      },
      {
        name: 'the callback opened in another browser (no cookie) is ' +
            'refused and its state is used up',
        run: (t) => flow.checked(() => flow.otherBrowser(t)),
      },
      {
        name: 'bob.globex, outside the members-only app\'s organization: ' +
            'refused after sign-in, no grant',
        run: (t) => flow.checked(() => flow.outsider(t)),
      },
      noRequestLeftLoopback(guard),
      {
        name: 'the broker and the emulator exit 0; their logs hold no ' +
            'password, secret, link, cookie, state, code, verifier or token',
        run: async () => {
          for (const server of [broker, emulator]) {
            const {code, signal} = await server.stop();
            assert.equal(code, 0, `${server.name} exit: ${code ?? signal}`);
          }
          const secrets = flow.assertLogsClean();
          const kinds = new Set(Object.keys(secrets).map(
              (label) => label.replace(/ \(#\d+\)$| #\d+ \(relayed\)$/, '')));
          log(`looked for ${Object.keys(secrets).length} secret values in ` +
              `the logs: ${[...kinds].join(', ')}`);
        },
      },
    ];
    return await runScenarios(browser, guard, scenarios);
  } finally {
    await browser.close();
    if (broker) await broker.stop();
    await emulator.stop();
    if (relay) await relay.stop();
  }
}

// The sign-ins of the scenarios, started with `tokenbrokerctl connect` and
// checked with tokenbrokerctl afterwards.
class BrokerFlow {
  constructor(options) {
    Object.assign(this, options);
    this.callbackUrl = `${this.pagesUrl}/oauth/callback`;
  }

  // Records `value` as a secret no log may hold, labelled by `kind` and a
  // number (never by any part of the value).
  addSecret(kind, value) {
    if (Object.values(this.secrets).includes(value)) return;
    this.secretCount = (this.secretCount || 0) + 1;
    this.secrets[`${kind} (#${this.secretCount})`] = value;
  }

  // Runs `scenario`, then checks that nothing left loopback and that no
  // secret seen so far (the relay's included) is in a log.
  async checked(scenario) {
    await scenario();
    assert.deepEqual(this.guard.offLoopback, [], 'requests off loopback');
    this.assertLogsClean();
  }

  assertLogsClean() {
    const secrets = {...this.secrets};
    for (const field
             of ['access_token', 'refresh_token', 'id_token', 'code',
                 'code_verifier']) {
      this.relay.seen(field).forEach((value, i) => {
        secrets[`${field} #${i + 1} (relayed)`] = value;
      });
    }
    for (const server of this.servers) server.assertLogHasNone(secrets);
    return secrets;
  }

  // tokenbrokerctl ARGS against the broker, as an independent client does:
  // {code, stdout, stderr}. Never prints stdout (a token may be on it).
  ctl(args) {
    const env = {...process.env};
    for (const name of Object.keys(env)) {
      if (name.startsWith('TOKENBROKER_')) delete env[name];
    }
    env.TOKENBROKER_ADDR = this.grpcAddr;
    env.TOKENBROKER_PLAINTEXT = '1';
    return new Promise((resolve) => {
      childProcess.execFile(
          this.cli, args, {env, timeout: WAIT_MS}, (error, stdout, stderr) => {
            let code = 0;
            if (error) code = typeof error.code === 'number' ? error.code : -1;
            resolve({code, stdout, stderr});
          });
    });
  }

  async ctlOk(args) {
    const result = await this.ctl(args);
    assert.equal(
        result.code, 0,
        `tokenbrokerctl ${args[0]} exit ${result.code}: ${
            result.stderr.trim()}`);
    return result;
  }

  // `tokenbrokerctl connect viewer --no-wait`: the link alone on its line.
  async connectLink() {
    const {stdout} = await this.ctlOk(['connect', APP, '--no-wait']);
    const links = stdout.split('\n').filter((l) => /^https?:\/\//.test(l));
    assert.equal(links.length, 1, `one link line in: ${stdout}`);
    const link = links[0];
    assert.ok(
        link.startsWith(`${this.pagesUrl}/oauth/start?`),
        'the link opens the broker\'s /oauth/start');
    for (const [name, value] of new URL(link).searchParams) {
      this.addSecret(`the link's ${name}`, value);
    }
    return link;
  }

  // The users of the app in `tokenbrokerctl apps --json`.
  async users() {
    const {stdout} = await this.ctlOk(['apps', '--json']);
    const app = JSON.parse(stdout).apps.find((a) => a.name === APP);
    assert.ok(app, `apps lists ${APP}`);
    assert.ok(Array.isArray(app.users), `${APP} has a users list`);
    return app.users;
  }

  // The records in the grant store directory.
  storedRecords() {
    return fs.readdirSync(this.grantsDir)
        .filter((name) => !name.startsWith('.'))
        .sort();
  }

  // Opens the link: a 302 from /oauth/start (with the page headers and the
  // binding cookie) to the emulator's sign-in page through the relay.
  // Returns the authorize request's parameters.
  async start(page) {
    const link = await this.connectLink();
    const response = await page.goto(link);
    assert.equal(
        response.status(), 200,
        `the sign-in page answered ${response.status()}`);
    const redirected = response.request().redirectedFrom();
    assert.ok(
        redirected && redirected.url() === link,
        'the link redirected to the sign-in page');
    const redirect = await redirected.response();
    assert.equal(redirect.status(), 302);
    await this.assertPageHeaders(redirect);

    const authorize = new URL(page.url());
    assert.equal(
        `${authorize.origin}${authorize.pathname}`,
        `${this.relay.baseUrl}/accounts/api/v2/oauth2/authorize`);
    const params = Object.fromEntries(authorize.searchParams);
    assert.equal(params.response_type, 'code');
    assert.equal(params.client_id, CONNECTED_APP.clientId);
    assert.equal(params.redirect_uri, this.callbackUrl);
    assert.deepEqual(
        params.scope.split(' ').sort(),
        [CONNECTED_APP.scope, 'offline_access'].sort());
    assert.equal(params.code_challenge_method, 'S256');
    assert.ok(
        params.state && params.state.length >= 22,
        'a state of at least 128 bits');
    this.addSecret('state', params.state);

    const cookies = await page.context().cookies(this.callbackUrl);
    assert.equal(cookies.length, 1, 'one cookie binds the sign-in');
    const [cookie] = cookies;
    assert.ok(cookie.httpOnly, 'the cookie is HttpOnly');
    assert.equal(cookie.sameSite, 'Lax');
    this.addSecret('binding cookie', cookie.value);
    return params;
  }

  async assertPageHeaders(response) {
    const headers = await response.allHeaders();
    assert.match(
        headers['cache-control'] || '', /no-store/,
        `Cache-Control of ${response.url().split('?')[0]}`);
    assert.equal(
        headers['referrer-policy'], 'no-referrer',
        `Referrer-Policy of ${response.url().split('?')[0]}`);
  }

  // Runs `action` and returns the broker's answer to the callback the
  // browser then follows (its page loaded), after checking its headers and
  // that it echoes neither the code nor the state.
  async callbackAfter(page, action) {
    const answer =
        page.waitForResponse((r) => r.url().startsWith(`${this.callbackUrl}?`));
    await action();
    const response = await answer;
    await page.waitForLoadState();
    await this.assertPageHeaders(response);
    const query = new URL(response.url()).searchParams;
    const html = await response.text();
    for (const name of ['code', 'state']) {
      const value = query.get(name);
      if (value) {
        this.addSecret(name, value);
        assert.ok(!html.includes(value), `the page does not echo the ${name}`);
      }
    }
    return response;
  }

  async heading(page) {
    return (await page.getByRole('heading', {level: 1}).innerText()).trim();
  }

  async bodyText(page) {
    return (await page.locator('body').innerText()).replace(/\s+/g, ' ');
  }

  async assertRefused(page, response, status, heading, text) {
    assert.equal(
        response.status(), status,
        `the callback answered ${response.status()}`);
    assert.equal(await this.heading(page), heading);
    assert.match(await this.bodyText(page), text);
  }

  // Approve as alice.acme; returns the callback URL the browser followed.
  async signInAndApprove(page) {
    await this.start(page);
    await emulatorSignIn(page, ALICE);
    const response = await this.callbackAfter(
        page, () => emulatorConsent(page, CONNECTED_APP, 'Approve'));
    assert.equal(
        response.status(), 200, `the callback answered ${response.status()}`);
    assert.equal(await this.heading(page), `Connected: ${APP}`);
    const body = await this.bodyText(page);
    assert.match(body, new RegExp(`signed in as ${ALICE.username}\\b`));
    // The scopes granted: the app's, and offline_access (the refresh token).
    assert.deepEqual(
        (await page.locator('li').allInnerTexts()).sort(),
        [CONNECTED_APP.scope, 'offline_access'].sort(), 'the scopes granted');
    return response.url();
  }

  async approve(t) {
    await this.signInAndApprove(t.page);

    const token = await this.ctlOk(['token', APP, '--user', ALICE.username]);
    const accessToken = token.stdout.trim();
    assert.ok(
        accessToken !== '' && !/\s/.test(accessToken),
        'token prints one access token');
    this.addSecret('access token from token', accessToken);
    assert.ok(
        this.relay.seen('refresh_token').length > 0,
        'the code exchange issued a refresh token');

    const environments = await this.ctlOk(
        ['call', APP, 'GET', ENVIRONMENTS, '--user', ALICE.username, '-i']);
    assert.match(
        environments.stdout, /^HTTP 200\n/,
        `environments: ${environments.stdout.split('\n')[0]}`);
    assert.match(environments.stdout, /Production/);

    // The upstream refusal is data in the Call answer: exit 0, status 403.
    const applications = await this.ctl([
      'call', APP, 'GET', APPLICATIONS, '--user', ALICE.username, '-i', '-H',
      `X-ANYPNT-ORG-ID:${ACME_ORG}`, '-H', `X-ANYPNT-ENV-ID:${DEMO.acmeSandbox}`
    ]);
    assert.equal(
        applications.code, 0,
        `call ${APPLICATIONS} exit ${applications.code}: ${
            applications.stderr.trim()}`);
    assert.match(
        applications.stdout, /^HTTP 403\n/,
        `${APPLICATIONS}: ${applications.stdout.split('\n')[0]}`);
    assert.match(
        applications.stdout, /read:applications/,
        'the refusal names the missing scope');

    const table = await this.ctlOk(['apps']);
    assert.ok(
        table.stdout.split('\n').some(
            (l) => l.includes(ALICE.username) && /\bconnected\b/.test(l)),
        `apps shows ${ALICE.username} connected:\n${table.stdout}`);
    const users = await this.users();
    assert.deepEqual(
        users.map((u) => [u.username, u.state]),
        [[ALICE.username, 'connected']]);
    assert.deepEqual(
        [...users[0].scopes].sort(),
        [CONNECTED_APP.scope, 'offline_access'].sort());
    assert.equal(this.storedRecords().length, 1, 'one record stored');
    this.assertStoreOpaque();
    this.aliceConnectedAt = users[0].connected_at;
  }

  // The grant store holds no token or code in the clear.
  assertStoreOpaque() {
    for (const name of this.storedRecords()) {
      const text = fs.readFileSync(path.join(this.grantsDir, name), 'latin1');
      for (const field of ['refresh_token', 'access_token', 'code']) {
        for (const value of this.relay.seen(field)) {
          assert.ok(
              !text.includes(value),
              `store record ${name} holds a ${field} in the clear`);
        }
      }
    }
  }

  // Only alice.acme's grant, connected when `connectedAt` says.
  async assertOnlyAlice(connectedAt) {
    const users = await this.users();
    assert.deepEqual(
        users.map((u) => [u.username, u.state]),
        [[ALICE.username, 'connected']], 'only alice.acme');
    assert.equal(
        users[0].connected_at, connectedAt, 'alice.acme\'s grant unchanged');
    assert.equal(this.storedRecords().length, 1, 'one record stored');
  }

  async deny(t) {
    const {page} = t;
    await this.start(page);
    await emulatorSignIn(page, ALICE);
    const response = await this.callbackAfter(
        page, () => emulatorConsent(page, CONNECTED_APP, 'Deny'));
    await this.assertRefused(
        page, response, 403, 'Access was not granted',
        new RegExp(`You declined access for ${APP}`));
    await this.assertOnlyAlice(this.aliceConnectedAt);
  }

  // A fresh Approve, then the same callback URL again in the same browser.
  async replay(t) {
    const {page} = t;
    const used = await this.signInAndApprove(page);
    const [alice] = await this.users();
    assert.ok(
        alice.connected_at >= this.aliceConnectedAt,
        'the fresh approve renewed alice.acme\'s grant');
    this.aliceConnectedAt = alice.connected_at;

    const response = await this.callbackAfter(page, () => page.goto(used));
    await this.assertRefused(
        page, response, 403, 'This sign-in cannot be completed',
        /already completed.*Nothing was changed/);
    await this.assertOnlyAlice(this.aliceConnectedAt);
  }

  // Started in browser A; the emulator's redirect to the callback is held
  // in A and opened in browser B, which has no cookie; then A cannot use it
  // either.
  async otherBrowser(t) {
    const a = t.page;
    await this.start(a);
    await emulatorSignIn(a, ALICE);
    let hold;
    const holding = new Promise((resolve) => {
      hold = resolve;
    });
    // The browser follows a redirect without asking route handlers, so the
    // consent form's POST is sent from here and the redirect it answers is
    // read, not followed.
    await a.route((url) => url.origin === this.relay.baseUrl, async (route) => {
      if (route.request().method() !== 'POST') {
        return route.fallback();
      }
      const answer = await route.fetch({maxRedirects: 0});
      const location = answer.headers().location || '';
      if (!location.startsWith(`${this.callbackUrl}?`)) {
        return route.fulfill({response: answer});
      }
      hold(location);
      return route.fulfill({
        status: 200,
        contentType: 'text/html',
        body: '<!doctype html><title>Held</title>',
      });
    });
    await emulatorConsent(a, CONNECTED_APP, 'Approve');
    const held = await bounded(holding, 'the redirect to the callback');
    await a.unrouteAll();
    const query = new URL(held).searchParams;
    assert.ok(query.get('code'), 'the held callback has a code');
    this.addSecret('code', query.get('code'));
    this.addSecret('state', query.get('state'));

    const b = await t.newPage();
    const inB = await this.callbackAfter(b, () => b.goto(held));
    await this.assertRefused(
        b, inB, 403, 'This sign-in was started in another browser',
        /browser other than the one that opened/);
    const inA = await this.callbackAfter(a, () => a.goto(held));
    await this.assertRefused(
        a, inA, 403, 'This sign-in cannot be completed', /Nothing was changed/);
    await this.assertOnlyAlice(this.aliceConnectedAt);
  }

  async outsider(t) {
    const {page} = t;
    await this.start(page);
    const response =
        await this.callbackAfter(page, () => emulatorSignIn(page, OUTSIDER));
    await this.assertRefused(
        page, response, 403, 'Access was not granted',
        /only for members of its organization/);
    assert.equal(
        new URL(response.url()).searchParams.get('error'), 'access_denied');
    await this.assertOnlyAlice(this.aliceConnectedAt);
    const grants =
        await (await fetch(`${this.emulatorUrl}/_emulator/grants`)).json();
    assert.ok(
        !grants.grants.some((g) => g.username === OUTSIDER.username),
        'the emulator granted bob.globex nothing');
  }
}

// `promise`, or a rejection naming `what` after WAIT_MS.
async function bounded(promise, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what}`)), WAIT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

runMain(main);
