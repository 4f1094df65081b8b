import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium, installed by .ci/browser.sh (playwright-core downloads no browser). */
export const CHROMIUM = process.env.AIP_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
export const SIZES = { desktop: { width: 1280, height: 800 }, mobile: { width: 390, height: 844 } } as const;

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not at ${CHROMIUM}. Install it with \`bash .ci/browser.sh\` (apt-get install chromium), or point AIP_CHROMIUM at one.`);
  }
  // playwright gives every launch a fresh, throwaway profile (its own --user-data-dir).
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export interface WatchedPage {
  page: Page;
  /** Every CSP violation the page reported (securitypolicyviolation events and console reports). */
  cspViolations: string[];
  /** Uncaught page errors and console errors that are not CSP reports. */
  errors: string[];
}

/** A page with a CSP violation listener installed before any of the page's own script runs. */
export async function watchedPage(context: BrowserContext): Promise<WatchedPage> {
  const page = await context.newPage();
  const cspViolations: string[] = [];
  const errors: string[] = [];
  await page.exposeFunction('__aipCspViolation', (text: string) => cspViolations.push(text));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      (window as unknown as { __aipCspViolation(text: string): void }).__aipCspViolation(`${event.violatedDirective} blocked ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`);
    });
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (/Content.Security.Policy/i.test(text)) cspViolations.push(text);
    else errors.push(text);
  });
  page.on('pageerror', (error) => errors.push(String(error)));
  return { page, cspViolations, errors };
}

/** Screenshots the page at both sizes into ui/test-artifacts/NAME-desktop.png and NAME-mobile.png. */
export async function screenshots(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  const before = page.viewportSize();
  for (const [size, viewport] of Object.entries(SIZES)) {
    await page.setViewportSize(viewport);
    await page.waitForTimeout(100);
    await page.screenshot({ path: `${ARTIFACTS}${name}-${size}.png`, fullPage: true });
  }
  if (before) await page.setViewportSize(before);
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/**
 * axe-core's scan of the page as it is (injected through the DevTools
 * protocol, which the page's CSP does not govern, so the page keeps its own CSP).
 * Returns the serious and critical violations.
 */
export async function axeSerious(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(context: Document, options: object): Promise<{ violations: AxeViolation[] }> } }).axe;
    return (await axe.run(document, { resultTypes: ['violations'] })).violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
  })) as AxeViolation[];
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** What a page must hold after every step: no CSP violation, no uncaught error. */
export function expectClean(watched: WatchedPage): void {
  if (watched.cspViolations.length > 0) throw new Error(`CSP violations: ${watched.cspViolations.join('; ')}`);
  const errors = watched.errors.filter((e) => !/Failed to load resource/.test(e));
  if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
}
