'use strict';
// The sign-in a person does, in headless Chromium, for scripts/demo: opens
// the broker's one-time link, signs in to (emulated) Anypoint as USERNAME,
// clicks Approve on the consent page and reads the broker's callback page,
// printing what each page says (as scripts/demo-sign-in.sh does with curl).
// Chromium starts and is fenced as in the browser tests
// (tests/browser/lib/harness.js): any request off loopback is aborted, and
// then this sign-in fails.
//
// Run by tests/browser/run.sh, which installs playwright-core and sets
// NODE_PATH and TOKENBROKER_CHROMIUM:
//   DEMO_PASSWORD=... tests/browser/run.sh NPM_DIR \
//       ../../scripts/demo-sign-in.js LINK USERNAME
// The password comes from the environment and is never printed; nor are the
// cookie, the state or the code. Exit 0 when the broker's page says
// "Connected", 77 when Chromium cannot start, 1 otherwise.

const path = require('node:path');

const {Guard, launchChromium} = require(
    path.join(__dirname, '..', 'tests', 'browser', 'lib', 'harness.js'));

// What the page says: its heading, paragraphs and lists, joined by " | ".
function pageText(page) {
  return page.evaluate(() => {
    const text = (e) => e.innerText.replace(/\s+/g, ' ').trim();
    const blocks = Array.from(document.querySelectorAll('h1, p, ul'), (e) => {
      if (e.tagName !== 'UL') return text(e);
      return Array.from(e.children, text).join(', ');
    });
    return blocks.join(' | ');
  });
}

async function main() {
  const [link, username] = process.argv.slice(2);
  const password = process.env.DEMO_PASSWORD;
  if (!link || !username || !password) {
    throw new Error('usage: DEMO_PASSWORD=... demo-sign-in.js LINK USERNAME');
  }
  const browser = await launchChromium();
  const guard = new Guard();
  try {
    const context = await guard.newContext(browser);
    const page = await context.newPage();

    const signIn = await page.goto(link);
    if (signIn.status() !== 200 || !(await page.locator('#password').count())) {
      throw new Error(`the link led to no sign-in page (${signIn.status()}): ${
          await pageText(page)}`);
    }
    console.log(
        'opened the link; the broker redirected to Anypoint\'s ' +
        'sign-in page:');
    console.log(`  ${await pageText(page)}`);

    await page.locator('#username').fill(username);
    await page.locator('#password').fill(password);
    await page.getByRole('button', {name: 'Sign in'}).click();
    const approve = page.getByRole('button', {name: 'Approve', exact: true});
    await approve.or(page.getByRole('alert')).waitFor();
    if (!(await approve.count())) {
      throw new Error(
          `signing in as ${username} failed: ${await pageText(page)}`);
    }
    console.log(`signed in as ${username}; Anypoint's consent page:`);
    console.log(`  ${await pageText(page)}`);

    const callback = page.waitForResponse(
        (r) => new URL(r.url()).pathname === '/oauth/callback');
    await approve.click();
    const answer = await callback;
    await page.waitForLoadState();
    console.log(
        'clicked Approve; Anypoint sent the browser back to the ' +
        'broker\'s callback, whose page says:');
    console.log(`  ${await pageText(page)}`);
    const heading = await page.getByRole('heading', {level: 1}).innerText();
    if (answer.status() !== 200 || !heading.startsWith('Connected')) {
      throw new Error(`the broker's callback answered ${answer.status()}`);
    }
    if (guard.offLoopback.length > 0) {
      throw new Error(
          `${guard.offLoopback.length} requests tried to leave ` +
          'loopback (aborted)');
    }
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(`demo-sign-in: ${error.message.split('\n')[0]}`);
  process.exit(1);
});
