// Screenshots of dashboard pages in real headless Chromium (Debian's `chromium`), for
// `make screenshots` (scripts/screenshots.sh), which points it at a dashboard serving the data
// of `make demo`.
//
// Environment: DASHBOARD_URL (base URL), DASHBOARD_PASSWORD, CHROMIUM (the browser binary),
// SCREENSHOT_DIR (where the PNGs go), SCREENSHOT_PAGES (JSON: [{name, url}]). Writes
// dashboard-<name>.png for each page and exits non-zero when a page does not answer 200.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.DASHBOARD_URL;
const shots = process.env.SCREENSHOT_DIR;
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-gpu"],
});
let failed = 0;
try {
  const context = await browser.newContext({
    httpCredentials: { username: "owner", password: process.env.DASHBOARD_PASSWORD },
    viewport: { width: 1200, height: 900 },
  });
  const page = await context.newPage();
  for (const { name, url } of JSON.parse(process.env.SCREENSHOT_PAGES)) {
    const response = await page.goto(base + url);
    await page.waitForLoadState("load");
    const file = join(shots, `dashboard-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const status = response ? response.status() : 0;
    console.log(`screenshots: ${url} answered ${status}: ${file}`);
    if (status !== 200) failed += 1;
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
