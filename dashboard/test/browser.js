// Opens the built dashboard in headless Chromium (puppeteer-core, the
// system's browser) and reports what a person would look at, as JSON on
// stdout: the top-users bars, the daily active users, the summary cards,
// the first rows of the Users table, a customer's page; every page error,
// every failed request and every request to another host (all requests are
// intercepted; only the dashboard's own origin is let through).  Saves a
// screenshot of each page.  The comparison with the database is the
// caller's (test/t/090_dashboard.pl runs the SQL).
//
//   node test/browser.js --customer SLUG --out DIR [--dist DIR] [--chromium PATH]
import {mkdirSync} from "node:fs";
import {join} from "node:path";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";
import puppeteer from "puppeteer-core";
import {serve} from "../serve.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const {values: args} = parseArgs({
  options: {
    customer: {type: "string"},
    out: {type: "string"},
    dist: {type: "string", default: join(here, "../dist")},
    chromium: {type: "string", default: process.env.CHROMIUM ?? "/usr/bin/chromium"}
  }
});
mkdirSync(args.out, {recursive: true});

const server = await serve(args.dist);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await puppeteer.launch({
  executablePath: args.chromium,
  headless: true,
  // The tests run as root in containers, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking"]
});
const report = {pageErrors: [], consoleErrors: [], external: [], failed: []};
try {
  const page = await browser.newPage();
  await page.setViewport({width: 1400, height: 1000});
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    const url = req.url();
    if (url.startsWith(origin + "/") || url.startsWith("data:") || url.startsWith("blob:")) req.continue();
    else {
      report.external.push(url);
      req.abort();
    }
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));
  page.on("console", (msg) => msg.type() === "error" && report.consoleErrors.push(msg.text()));
  page.on("response", (res) => res.status() >= 400 && report.failed.push(`${res.status()} ${res.url()}`));
  page.on("requestfailed", (req) => {
    if (!report.external.includes(req.url())) report.failed.push(`${req.failure()?.errorText} ${req.url()}`);
  });

  // open(path, selectors): the page, once every selector is there and the
  // network has been idle for half a second.
  async function open(path, selectors) {
    await page.goto(origin + path, {waitUntil: "networkidle0", timeout: 60000});
    for (const s of selectors) await page.waitForSelector(s, {timeout: 30000});
  }

  // The bars of a chart: each rect's <title> (the figures the chart was
  // drawn from), its width and height in pixels and its fill.
  const bars = (card) =>
    page.$$eval(`${card} svg g[aria-label="bar"] rect`, (rects) =>
      rects.map((r) => ({
        title: r.querySelector("title")?.textContent ?? null,
        width: r.getBBox().width,
        height: r.getBBox().height,
        fill: getComputedStyle(r).fill
      }))
    );
  const cards = () =>
    page.$$eval("[data-figure]", (divs) =>
      Object.fromEntries(divs.map((d) => [d.dataset.figure, d.querySelector(".big")?.textContent.trim() ?? d.textContent.trim()]))
    );
  const tableRows = (n) =>
    page.$$eval(
      "table tbody tr",
      (trs, n) => trs.slice(0, n).map((tr) => Array.from(tr.querySelectorAll("td"), (td) => td.textContent.trim())),
      n
    );
  const tableHeader = () => page.$$eval("table thead th", (ths) => ths.map((th) => th.textContent.trim()));

  await open("/", ["#top-users svg", "#dau svg", "#wau svg", "#cost-by-user svg"]);
  report.overview = {
    cards: await cards(),
    topUsers: await bars("#top-users"),
    topUserLabels: await page.$$eval('#top-users svg g[aria-label="y-axis tick label"] text', (ts) => ts.map((t) => t.textContent)),
    dau: await bars("#dau"),
    dauNotes: await page.$$eval('#dau svg g[aria-label="text"] text', (ts) => ts.map((t) => t.textContent)),
    wau: await bars("#wau"),
    costByUser: await bars("#cost-by-user"),
    customerLinks: await page.$$eval(".customer-links a", (as) => as.map((a) => a.getAttribute("href")))
  };
  await page.screenshot({path: join(args.out, "overview.png"), fullPage: true});

  await open("/users", ["table tbody tr"]);
  report.users = {header: await tableHeader(), rows: await tableRows(10)};
  await page.screenshot({path: join(args.out, "users.png"), fullPage: true});

  await open(`/customers/${encodeURIComponent(args.customer)}`, ["[data-figure=requests]", "#usage svg", "table tbody tr"]);
  report.customer = {
    title: await page.$eval("h1", (h) => h.textContent.trim()),
    cards: await cards(),
    budget: await page.$eval("[data-figure=budget]", (d) => d.textContent.replace(/\s+/g, " ").trim()),
    usage: await bars("#usage"),
    logHeader: await tableHeader(),
    logs: await tableRows(20)
  };
  await page.screenshot({path: join(args.out, "customer.png"), fullPage: true});

  // The interception itself: a request to another host from the page is
  // seen and refused (the browser logs the refusal as a console error).
  const consoleErrors = report.consoleErrors.slice();
  await page.evaluate(() => fetch("http://example.invalid/probe").catch(() => null));
  report.probeSeen = report.external.includes("http://example.invalid/probe");
  report.external = report.external.filter((url) => url !== "http://example.invalid/probe");
  report.consoleErrors = consoleErrors;
} finally {
  await browser.close();
  server.close();
}
process.stdout.write(JSON.stringify(report, null, 1) + "\n");
