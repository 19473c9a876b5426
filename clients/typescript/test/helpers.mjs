// Shared by the tests: the server under test (started by the Rust test that runs these, which
// sets PETSTORE_BASE_URL), tokens from its REST API, and a WebSocket constructor for Node 20.
import WebSocket from "ws";

export const BASE_URL = process.env.PETSTORE_BASE_URL;
if (!BASE_URL) {
  throw new Error(
    "PETSTORE_BASE_URL is not set: run these through `cargo test -p petstore-ws --test browser`, " +
      "which starts the server",
  );
}
export const WS_URL = `${BASE_URL.replace(/^http/, "ws")}/api/v3/ws`;

/** Node 22+ has a global WebSocket; Node 20 needs the `ws` package's. */
export const WebSocketImpl = globalThis.WebSocket ?? WebSocket;

let cachedToken;

/** An access token of the demo administrator (one per run: password logins are rate-limited). */
export async function adminToken() {
  cachedToken ??= fetchToken();
  return cachedToken;
}

async function fetchToken() {
  const response = await fetch(`${BASE_URL}/api/v3/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: "admin-password" }),
  });
  if (!response.ok) throw new Error(`token: ${response.status} ${await response.text()}`);
  return (await response.json()).accessToken;
}

/** Adds a pet over REST with `token`. */
export async function restAddPet(token, name) {
  const response = await fetch(`${BASE_URL}/api/v3/pet`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ name, photoUrls: [], status: "available" }),
  });
  if (!response.ok) throw new Error(`addPet: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Resolves with the first notification `accept` takes, or rejects after `ms`. */
export function nextNotification(client, accept, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no matching notification within ${ms} ms`));
    }, ms);
    const stop = client.onNotification((notification) => {
      if (accept(notification)) {
        clearTimeout(timer);
        stop();
        resolve(notification);
      }
    });
  });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
