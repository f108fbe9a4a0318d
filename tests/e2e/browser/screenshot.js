#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Load the aggregator's page in headless chromium, wait until the script on
// the page has rendered the fleet, print what it shows as JSON on stdout, and
// save a screenshot.
//
//   node screenshot.js URL OUTPUT.png [--chromium PATH] [--timeout MS]
//
// Uses playwright-core only to drive the browser: the browser itself is
// Debian's /usr/bin/chromium, never a download.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

// The count cards: the states, and the warnings beside them.
const STATES = ["total", "failing", "stale", "lagging", "converged", "shadowed", "inactive-target"];

function usage(msg) {
  if (msg) console.error(msg);
  console.error("usage: screenshot.js URL OUTPUT.png [--chromium PATH] [--timeout MS]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { chromium: "/usr/bin/chromium", timeout: 30000, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--chromium") opts.chromium = argv[++i];
    else if (argv[i] === "--timeout") opts.timeout = Number(argv[++i]);
    else if (argv[i].startsWith("--")) usage(`unknown option ${argv[i]}`);
    else opts.positional.push(argv[i]);
  }
  if (opts.positional.length !== 2) usage();
  if (!Number.isFinite(opts.timeout) || opts.timeout <= 0) usage("bad --timeout");
  [opts.url, opts.output] = opts.positional;
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // A fresh profile each run: nothing cached or remembered from the last one.
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "nodetrust-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: opts.chromium,
      headless: true,
      timeout: opts.timeout,
      viewport: { width: 1280, height: 800 },
      // Keep chromium off the network: only the page under test is loaded.
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
    const page = context.pages()[0] || (await context.newPage());
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

    const response = await page.goto(opts.url, { waitUntil: "load", timeout: opts.timeout });
    if (!response || !response.ok()) throw new Error(`GET ${opts.url}: HTTP ${response && response.status()}`);
    // The page marks itself loaded after it rendered the first API answers.
    await page.waitForSelector('body[data-loaded="true"]', { timeout: opts.timeout });

    const result = await page.evaluate((states) => {
      const text = (id) => (document.getElementById(id) || {}).textContent;
      const counts = {};
      for (const s of states) counts[s] = Number(text(`count-${s}`));
      const trs = Array.from(document.querySelectorAll("#nodes tr"));
      const rows = trs.map((tr) => Array.from(tr.children).map((td) => td.textContent.trim()));
      // Each warning of a row: its text, its tooltip, the target it names.
      const warnings = trs.map((tr) => Array.from(tr.querySelectorAll(".warning")).map((w) => ({
        target: w.getAttribute("data-target"), text: w.textContent.trim(), title: w.title,
        html: w.innerHTML, elements: w.querySelectorAll("*").length,
      })));
      const expiring = Array.from(document.querySelectorAll("#expiring tr")).map((tr) =>
        Array.from(tr.children).map((td) => td.textContent.trim()));
      // The per-registry table: each cell's text, keyed by the header.
      const regBody = document.getElementById("registries");
      const regHeads = regBody ?
        Array.from(regBody.closest("table").querySelectorAll("th")).map((th) => th.textContent.trim()) : [];
      const registries = Array.from(document.querySelectorAll("#registries tr")).map((tr) => {
        const row = { registry: tr.getAttribute("data-registry") };
        Array.from(tr.children).forEach((td, i) => { row[regHeads[i]] = td.textContent.trim(); });
        row.attention = Array.from(tr.querySelectorAll(".attn")).map((a) => a.textContent.trim());
        return row;
      });
      const svg = document.querySelector("#rollout svg");
      const rollout = svg ? {
        paths: Array.from(svg.querySelectorAll("path")).map((p) => ({ cls: p.getAttribute("class"),
                                                                      d: p.getAttribute("d") })),
        points: svg.querySelectorAll("circle.point").length,
        label: svg.getAttribute("aria-label"),
        note: text("rollout-note"),
      } : null;
      return {
        registries,
        rollout,
        title: document.title,
        counts,
        nodes: rows.map((r, i) => ({ name: r[0], state: r[1], registries: r[4], problem: r[6],
                                     warnings: warnings[i] })),
        inactive_targets: text("inactive-targets"),
        // Report strings must stay text: nothing they hold may become markup.
        scripts: document.querySelectorAll("script").length,
        images: document.querySelectorAll("img").length,
        injected: window.__nodetrust_injected === true,
        expiring: expiring.map((r) => ({ when: r[0], registry: r[1], node: r[2] })),
        current_hash: text("current-hash"),
        banner_shown: document.getElementById("banner").classList.contains("show"),
      };
    }, STATES);

    fs.mkdirSync(path.dirname(path.resolve(opts.output)), { recursive: true });
    await page.screenshot({ path: opts.output, fullPage: true });
    result.screenshot = path.resolve(opts.output);
    result.problems = problems;
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`screenshot.js: ${e.stack || e}`);
  process.exit(1);
});
