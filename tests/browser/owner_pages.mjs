// Loads the owner-analytics pages in real headless Chromium (Debian's `chromium`, driven by
// playwright-core) for tests/tests/owner_pipeline.rs, and reports what the rendered DOM shows.
//
// Environment: DASHBOARD_URL (base URL), DASHBOARD_PASSWORD, CHROMIUM (the browser binary),
// OWNER_PAGES (JSON: [{name, url}]). Prints one JSON report on stdout: per page its status,
// the text of `main`, the value of every card (by id) and the text of every table cell row;
// plus console errors. Exits non-zero only when the browser could not be driven at all.
import { chromium } from "playwright-core";

const base = process.env.DASHBOARD_URL;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
  ],
});
const report = { pages: [], consoleErrors: [] };
try {
  const context = await browser.newContext({
    httpCredentials: { username: "tester", password: process.env.DASHBOARD_PASSWORD },
  });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") report.consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => report.consoleErrors.push(`pageerror: ${e.message}`));
  for (const { name, url } of JSON.parse(process.env.OWNER_PAGES || "[]")) {
    const response = await page.goto(base + url);
    await page.waitForLoadState("load");
    const cards = {};
    for (const card of await page.locator("[id^='card-']").all()) {
      const id = await card.getAttribute("id");
      const value = await card.locator(".value").first().textContent();
      cards[id] = value?.trim();
    }
    const rows = [];
    for (const row of await page.locator("main table tr").all()) {
      rows.push((await row.locator("th, td").allInnerTexts()).map((t) => t.trim()));
    }
    report.pages.push({
      name,
      status: response ? response.status() : null,
      text: await page.locator("main").innerText(),
      cards,
      rows,
    });
  }
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
