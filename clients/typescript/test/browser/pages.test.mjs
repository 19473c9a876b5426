// The documentation pages and the TypeScript client in a real browser: Debian's Chromium driven
// by Playwright (which downloads no browser of its own). Run by the Rust test
// tests/browser/main.rs, which starts the server and sets:
// - PETSTORE_BASE_URL: the server;
// - PETSTORE_CHROMIUM: the browser executable;
// - PETSTORE_SCREENSHOTS: where a failing test leaves a screenshot of its page.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, normalize } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright";

import { CONTROL_ACTIONS, EVENTS, OPERATIONS } from "../../dist/generated.js";

const BASE_URL = process.env.PETSTORE_BASE_URL;
const CHROMIUM = process.env.PETSTORE_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.PETSTORE_SCREENSHOTS ?? join(process.cwd(), "screenshots");
if (!BASE_URL) {
  throw new Error("PETSTORE_BASE_URL is not set: run through `cargo test -p petstore-ws --test browser`");
}
const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

let browser;
let pageServer;
let pageOrigin;

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  pageServer = await servePackage();
  pageOrigin = `http://127.0.0.1:${pageServer.address().port}`;
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (pageServer ? pageServer.close(resolve) : resolve()));
});

/** Runs `body` with a fresh page; on failure leaves `<name>.png` in PETSTORE_SCREENSHOTS. */
async function withPage(name, body) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const console = [];
  page.on("console", (message) => console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => console.push(`pageerror: ${error.message}`));
  try {
    await body(page);
  } catch (error) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const file = join(SCREENSHOTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    error.message += `\n(screenshot: ${file}; page console:\n  ${console.join("\n  ")})`;
    throw error;
  } finally {
    await context.close();
  }
}

async function adminToken() {
  const response = await fetch(`${BASE_URL}/api/v3/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "admin-password" }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).accessToken;
}

/** Serves the test page and the built client (dist/) from another origin than the API's. */
function servePackage() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://x").pathname;
    const relative = path === "/" ? "test/browser/client-page.html" : normalize(path).replace(/^\/+/, "");
    if (!(relative.startsWith("dist/") || relative === "test/browser/client-page.html")) {
      response.writeHead(404).end();
      return;
    }
    try {
      const body = readFileSync(join(PACKAGE_DIR, relative));
      const extension = relative.slice(relative.lastIndexOf("."));
      response.writeHead(200, { "content-type": types[extension] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Opens an operation in Swagger UI, clicks "Try it out" and "Execute", answers the status shown. */
async function tryOperation(page, tag, operationId) {
  const operation = page.locator(`#operations-${tag}-${operationId}`);
  await operation.locator(".opblock-summary").first().click();
  await operation.getByRole("button", { name: "Try it out" }).click();
  await operation.getByRole("button", { name: "Execute" }).click();
  const status = operation.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor({ timeout: 15_000 });
  return (await status.innerText()).trim();
}

test("Swagger UI: authorize with a token, then getPetById and addPet answer 200", async () => {
  const token = await adminToken();
  await withPage("swagger-ui", async (page) => {
    await page.goto(`${BASE_URL}/api/v3/docs/`);
    await page.getByRole("button", { name: /Authorize/ }).first().click();
    const dialog = page.locator(".dialog-ux .modal-ux");
    await dialog.waitFor();
    const bearer = dialog.locator(".auth-container").filter({ hasText: "bearerAuth" });
    await bearer.locator("input").first().fill(token);
    await bearer.locator("button.authorize").click();
    await bearer.getByText("Authorized").first().waitFor();
    await dialog.locator("button.close-modal").click();

    assert.equal(await tryOperation(page, "pet", "getPetById"), "200");
    assert.equal(await tryOperation(page, "pet", "addPet"), "200");
  });
});

test("the AsyncAPI page lists every action and every event", async () => {
  await withPage("asyncapi", async (page) => {
    await page.goto(`${BASE_URL}/api/v3/ws/docs/`);
    // Rendered once the title is there (the layout may keep parts hidden until scrolled to).
    await page
      .getByText("petstore-ws WebSocket API")
      .first()
      .waitFor({ state: "attached", timeout: 30_000 });
    const text = await page.locator("#asyncapi").evaluate((element) => element.textContent ?? "");
    const missing = [...OPERATIONS, ...CONTROL_ACTIONS, ...EVENTS].filter((name) => !text.includes(name));
    assert.deepEqual(missing, [], "names the AsyncAPI page does not show");
  });
});

test("a page using the TypeScript client is notified of a REST write", async () => {
  const token = await adminToken();
  await withPage("client-page", async (page) => {
    const query = new URLSearchParams({ base: BASE_URL });
    await page.goto(`${pageOrigin}/?${query}`);
    await page.locator("#status", { hasText: "subscribed" }).waitFor({ timeout: 15_000 });

    const name = `Browser-${Date.now()}`;
    const response = await fetch(`${BASE_URL}/api/v3/pet`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ name, photoUrls: [] }),
    });
    assert.equal(response.status, 200);
    await page.locator("#events li", { hasText: `pet.created ${name}` }).waitFor({ timeout: 15_000 });
  });
});
