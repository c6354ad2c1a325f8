// Drives the dashboard in real headless Chromium (Debian's `chromium`, never a browser that a
// tool downloads) with playwright-core, for tests/tests/dashboard_browser.rs.
//
// Environment: DASHBOARD_URL (base URL), DASHBOARD_PASSWORD, CHROMIUM (the browser binary),
// SCREENSHOT_DIR (where the PNGs go), DASHBOARD_PAGES (JSON: [{name, url}], every page of the
// dashboard-core registry; each is visited too, after the walk through the links). Prints one
// JSON report on stdout; the Rust test asserts on it. Exits non-zero only when the browser could not be driven at all.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.DASHBOARD_URL;
const password = process.env.DASHBOARD_PASSWORD;
const shots = process.env.SCREENSHOT_DIR;
mkdirSync(shots, { recursive: true });

// launch() starts Chromium with a fresh temporary --user-data-dir. The flags keep it off the
// network it cannot reach here (and that a test has no business with).
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

const report = { refused: {}, pages: [], consoleErrors: [], failedRequests: [], badResponses: [] };
try {
  // Without credentials, and with a wrong password: 401.
  for (const [name, credentials] of [["none", undefined], ["wrong", { username: "tester", password: "wrong-password" }]]) {
    const context = await browser.newContext(credentials ? { httpCredentials: credentials } : {});
    const page = await context.newPage();
    const statuses = [];
    page.on("response", (r) => statuses.push(r.status()));
    let error = null;
    try {
      await page.goto(base + "/");
    } catch (e) {
      // Chromium gives up on credentials the server keeps refusing.
      error = String(e.message).split("\n")[0];
    }
    await page.waitForLoadState("load").catch(() => {});
    let body = "";
    for (let i = 0; i < 20 && body === ""; i++) {
      body = await page.content().catch(() => "");
      if (body === "") await page.waitForTimeout(100);
    }
    report.refused[name] = { statuses, error, showsData: body.includes("/start") };
    await context.close();
  }

  const context = await browser.newContext({
    httpCredentials: { username: "tester", password },
    viewport: { width: 1200, height: 900 },
  });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") report.consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => report.consoleErrors.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => report.failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`));
  let bytes = [];
  page.on("response", async (r) => {
    if (r.status() >= 400) report.badResponses.push(`${r.status()} ${r.url()}`);
    try {
      bytes.push({ url: r.url(), bytes: (await r.body()).length });
    } catch {
      // redirects and aborted loads have no body
    }
  });

  async function visit(name, action, screenshot = true) {
    bytes = [];
    const response = await action();
    await page.waitForLoadState("load");
    await page.waitForTimeout(200);
    const html = await page.content();
    const file = join(shots, `dashboard-${name}.png`);
    if (screenshot) await page.screenshot({ path: file, fullPage: true });
    const documentUrl = page.url();
    const htmlBytes = bytes.filter((b) => b.url === documentUrl).reduce((s, b) => s + b.bytes, 0);
    const entry = {
      name,
      url: documentUrl,
      status: response ? response.status() : null,
      title: await page.title(),
      h1: (await page.locator("h1").first().textContent())?.trim(),
      text: await page.locator("main").innerText(),
      chartPoints: await page.locator("svg.chart circle.point").count(),
      chartLines: await page.locator("svg.chart polyline").count(),
      chartBars: await page.locator("svg.chart rect.bar").count(),
      scripts: await page.locator("script").count(),
      htmlBytes,
      totalBytes: bytes.reduce((s, b) => s + b.bytes, 0),
      resources: bytes.map((b) => b.url.replace(base, "")),
      screenshot: screenshot ? file : null,
      hasScriptTag: html.includes("<script"),
    };
    report.pages.push(entry);
    return entry;
  }

  await visit("overview", () => page.goto(base + "/"));
  await visit("overview-7d", () =>
    Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "7d", exact: true }).click()]).then(([r]) => r),
  );
  await visit("errors", () =>
    Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Errors", exact: true }).click()]).then(([r]) => r),
  );
  // Filter by the first listed release through the form.
  const release = await page.locator("select[name=release] option").nth(1).getAttribute("value");
  await page.selectOption("select[name=release]", release);
  await visit("errors-filtered", () =>
    Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Filter" }).click()]).then(([r]) => r),
  );
  report.filteredRelease = release;
  await visit("group", () =>
    Promise.all([page.waitForNavigation(), page.locator("table.groups a[href^='/errors/']").first().click()]).then(([r]) => r),
  );
  // The group's status form: each button is a POST with the page's CSRF token, answered with
  // a redirect back to the group.
  report.groupStatus = { before: await page.locator("#card-status .value").innerText() };
  for (const [state, button] of [["resolved", "Resolve"], ["reopened", "Reopen"], ["muted", "Mute"], ["unmuted", "Unmute"]]) {
    const entry = await visit(`group-${state}`, () =>
      Promise.all([page.waitForNavigation(), page.getByRole("button", { name: button, exact: true }).click()]).then(([r]) => r),
      true,
    );
    report.groupStatus[state] = await page.locator("#card-status .value").innerText();
    report.groupStatus[`${state}Url`] = entry.url;
  }
  await visit("pipeline", () =>
    Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Pipeline", exact: true }).click()]).then(([r]) => r),
  );
  // The owner-analytics pages, through the navigation.
  for (const [name, label] of [["users", "Users"], ["retention", "Retention"], ["funnels", "Funnels"], ["sources", "Sources"]]) {
    await visit(name, () =>
      Promise.all([page.waitForNavigation(), page.getByRole("link", { name: label, exact: true }).click()]).then(([r]) => r),
    );
  }
  // Every page of the registry, by its URL (no screenshots: the walk above took them).
  report.registry = [];
  for (const { name, url } of JSON.parse(process.env.DASHBOARD_PAGES || "[]")) {
    const entry = await visit(name, () => page.goto(base + url), false);
    report.registry.push(entry);
    report.pages.pop();
  }
  await context.close();
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
