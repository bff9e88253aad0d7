'use strict';
// The emulator's sign-in and consent pages in headless Chromium, with a
// capture server on 127.0.0.1 as the connected app's redirect URI (the
// emulator needs the exact registered URI, so the test serves a copy of the
// demo fixture whose env-viewer-app redirect URIs name the capture server).
//   node emulator_oauth.js --emulator BIN --fixture emulator/fixtures/demo.yaml
// Run through run.sh, which installs playwright-core and finds Chromium.

const path = require('node:path');
const {
  CaptureServer,
  DEMO,
  Guard,
  assert,
  copyReplacing,
  emulatorConsent,
  emulatorSignIn,
  fixtureClientSecret,
  guardStopsOffLoopback,
  launchChromium,
  makeWorkDir,
  noRequestLeftLoopback,
  parseArgs,
  pkcePair,
  randomToken,
  runMain,
  runScenarios,
  startEmulator,
} = require('./lib/harness');

const ACME_ORG = DEMO.acmeOrg;
// The members-only user app of the demo fixture and its registered URIs.
const APP = DEMO.envViewer;
const ALICE = DEMO.alice;
const OUTSIDER = DEMO.outsider;
const WRONG_PASSWORD = 'not-alices-password-7c1d';


async function main() {
  const args = parseArgs(['emulator', 'fixture']);
  const browser = await launchChromium();
  const work = makeWorkDir();
  const capture = await new CaptureServer().start();
  // The emulator needs the exact registered redirect URI.
  const fixtureText = copyReplacing(
      args.fixture, path.join(work, 'fixture.yaml'),
      Object.fromEntries(
          APP.redirectUris.map((uri) => [uri, capture.callbackUrl])));
  // Values that must never reach the emulator's log.
  const secrets = {
    'alice\'s password': ALICE.password,
    'the outsider\'s password': OUTSIDER.password,
    'the wrong password': WRONG_PASSWORD,
    'the client secret': fixtureClientSecret(fixtureText, APP.clientId),
  };
  const guard = new Guard();
  const emulator =
      await startEmulator(args.emulator, path.join(work, 'fixture.yaml'), work);
  try {
    const flow = new Flow(emulator.url, emulator.issuer, capture, secrets);
    const scenarios = [
      guardStopsOffLoopback(browser),
      {
        name: 'a wrong password shows "Incorrect username or password." ' +
            'and redirects nowhere',
        run: (t) => flow.wrongPassword(t.page),
      },
      {
        name: 'Approve sends code, state and iss to the redirect URI; the ' +
            'code redeems with the PKCE verifier and reads environments',
        run: (t) => flow.approve(t.page),
      },
      {
        name: 'Deny sends error=access_denied to the redirect URI',
        run: (t) => flow.deny(t.page),
      },
      {
        name: 'a user outside the members-only app\'s organization gets ' +
            'error=access_denied after sign-in',
        run: (t) => flow.outsider(t.page),
      },
      noRequestLeftLoopback(guard),
      {
        name: 'the emulator exits 0 and its log holds no password, ' +
            'secret, code or state',
        run: async () => {
          const {code, signal} = await emulator.stop();
          assert.equal(code, 0, `emulator exit: ${code ?? signal}`);
          emulator.assertLogHasNone(secrets);
        },
      },
    ];
    return await runScenarios(browser, guard, scenarios);
  } finally {
    await browser.close();
    await emulator.stop();
    await capture.stop();
  }
}

// One authorization request after another against the emulator, as the
// connected app's client would send them (RFC 6749 4.1, RFC 7636 S256).
class Flow {
  constructor(base, issuer, capture, secrets) {
    this.base = base;
    this.issuer = issuer;
    this.capture = capture;
    this.secrets = secrets;
  }

  // Opens the authorize URL; returns what the client keeps.
  async start(page) {
    const state = randomToken(24);
    const pkce = pkcePair();
    const url = new URL(`${this.base}/accounts/api/v2/oauth2/authorize`);
    url.search = new URLSearchParams({
                   client_id: APP.clientId,
                   response_type: 'code',
                   redirect_uri: this.capture.callbackUrl,
                   scope: APP.scope,
                   state,
                   code_challenge: pkce.challenge,
                   code_challenge_method: 'S256',
                 }).toString();
    this.secrets[`state ${state.slice(0, 6)}`] = state;
    const response = await page.goto(url.toString());
    assert.equal(
        response.status(), 200,
        `the authorize page answered ${response.status()}`);
    return {state, pkce, seen: this.capture.callbacks.length};
  }

  // The callback the capture server got for `request`, once the browser
  // has followed the redirect there.
  async callback(page, request) {
    await page.waitForURL((u) => u.href.startsWith(this.capture.callbackUrl));
    const params = await this.capture.callbackAfter(request.seen);
    assert.equal(params.state, request.state, 'state comes back unchanged');
    // RFC 9207: iss on every authorization response, errors included.
    assert.equal(params.iss, this.issuer, 'iss is the issuer of discovery');
    if (params.code)
      this.secrets[`code ${params.code.slice(0, 6)}`] = params.code;
    return params;
  }

  async wrongPassword(page) {
    const request = await this.start(page);
    await emulatorSignIn(page, {...ALICE, password: WRONG_PASSWORD});
    await page.getByText('Incorrect username or password.').waitFor();
    await page.locator('#password').waitFor();
    assert.ok(page.url().startsWith(this.base), 'still on the emulator');
    assert.ok(
        !(await page.content()).includes(WRONG_PASSWORD),
        'the page does not echo the password');
    assert.equal(
        this.capture.callbacks.length, request.seen,
        'the redirect URI got nothing');
  }

  async approve(page) {
    const request = await this.start(page);
    await emulatorSignIn(page, ALICE);
    await emulatorConsent(page, APP, 'Approve');
    const params = await this.callback(page, request);
    assert.ok(params.code, 'a code');
    assert.equal(params.error, undefined);

    const token = await this.post('/accounts/api/v2/oauth2/token', {
      grant_type: 'authorization_code',
      code: params.code,
      redirect_uri: this.capture.callbackUrl,
      client_id: APP.clientId,
      client_secret: this.secrets['the client secret'],
      code_verifier: request.pkce.verifier,
    });
    assert.equal(token.status, 200, `token endpoint: ${token.text}`);
    const accessToken = JSON.parse(token.text).access_token;
    assert.ok(accessToken, 'an access token');
    this.secrets['the access token'] = accessToken;
    const environments = await fetch(
        `${this.base}/accounts/api/organizations/${ACME_ORG}/environments`,
        {headers: {Authorization: `Bearer ${accessToken}`}});
    assert.equal(
        environments.status, 200, `environments: ${await environments.text()}`);
  }

  async deny(page) {
    const request = await this.start(page);
    await emulatorSignIn(page, ALICE);
    await emulatorConsent(page, APP, 'Deny');
    await this.accessDenied(page, request);
  }

  // No consent page: the emulator answers right after the sign-in.
  async outsider(page) {
    const request = await this.start(page);
    await emulatorSignIn(page, OUTSIDER);
    const consent = page.getByRole('heading', {name: /^Allow /});
    await Promise.race([
      page.waitForURL((u) => u.href.startsWith(this.capture.callbackUrl)),
      consent.waitFor().then(() => {
        throw new Error(
            'the consent page was shown to a user outside the ' +
            'organization');
      }),
    ]);
    await this.accessDenied(page, request);
  }

  async accessDenied(page, request) {
    const params = await this.callback(page, request);
    assert.equal(params.error, 'access_denied');
    assert.equal(params.code, undefined, 'no code');
  }

  async post(pathname, form) {
    const response = await fetch(`${this.base}${pathname}`, {
      method: 'POST',
      headers: {'Content-Type': 'application/x-www-form-urlencoded'},
      body: new URLSearchParams(form).toString(),
    });
    return {status: response.status, text: await response.text()};
  }
}

runMain(main);
