// Create/read/update/delete round trips through a REST client generated from openapi.yaml
// (openapi-typescript types, openapi-fetch calls), as the Python contract tests do with their
// OpenAPI Generator client: request bodies it builds are accepted, answers have the typed
// shapes, and the state changes the spec promises are visible.
//
// Run by tests/contract (`cargo test -p petstore-ws --test contract`), which starts the server
// and sets PETSTORE_BASE_URL and PETSTORE_CONTRACT_API_KEY (an admin service key, sent in the
// spec's `api_key` header).
import assert from "node:assert/strict";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Pet = components["schemas"]["Pet"];

const baseUrl = process.env.PETSTORE_BASE_URL;
const apiKey = process.env.PETSTORE_CONTRACT_API_KEY;
if (!baseUrl || !apiKey) {
  throw new Error("PETSTORE_BASE_URL and PETSTORE_CONTRACT_API_KEY are set by tests/contract");
}

const client = createClient<paths>({ baseUrl: `${baseUrl}/api/v3`, headers: { api_key: apiKey } });
const anonymous = createClient<paths>({ baseUrl: `${baseUrl}/api/v3` });

/** `value`, or a failure saying what was missing (and a type without `undefined`). */
function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is missing`);
  return value;
}

function unique(prefix: string): string {
  return `${prefix}-${Math.random().toString(16).slice(2, 14)}`;
}

test("a pet is created, read, updated, found by status and deleted", async () => {
  const name = unique("ts-pet");
  const created = await client.POST("/pet", {
    body: { name, photoUrls: ["https://example.com/a.png"], status: "available", tags: [{ id: 1, name: "ts" }] },
  });
  assert.equal(created.response.status, 200, JSON.stringify(created.error));
  const pet: Pet = defined(created.data, "the created pet");
  const petId = defined(pet.id, "the created pet's id");

  const read = await client.GET("/pet/{petId}", { params: { path: { petId } } });
  assert.equal(read.data?.name, name);

  const updated = await client.PUT("/pet", { body: { id: petId, name: `${name}-renamed`, photoUrls: [], status: "sold" } });
  assert.equal(updated.response.status, 200, JSON.stringify(updated.error));
  assert.equal(updated.data?.status, "sold");

  const sold = await client.GET("/pet/findByStatus", { params: { query: { status: ["sold"] } } });
  assert.ok(sold.data?.some((found) => found.id === petId));

  const deleted = await client.DELETE("/pet/{petId}", { params: { path: { petId } } });
  assert.equal(deleted.response.status, 200);
  const gone = await client.GET("/pet/{petId}", { params: { path: { petId } } });
  assert.equal(gone.response.status, 404);
  assert.equal(gone.error?.type, "NOT_FOUND");
});

test("an order is placed, read, updated and deleted", async () => {
  const pet = await client.POST("/pet", { body: { name: unique("ts-order-pet"), photoUrls: [] } });
  const petId = defined(pet.data?.id, "the pet's id");
  const placed = await client.POST("/store/order", { body: { petId, quantity: 1, status: "placed" } });
  assert.equal(placed.response.status, 200, JSON.stringify(placed.error));
  const orderId = defined(placed.data?.id, "the order's id");

  const read = await client.GET("/store/order/{orderId}", { params: { path: { orderId } } });
  assert.equal(read.data?.petId, petId);

  const deleted = await client.DELETE("/store/order/{orderId}", { params: { path: { orderId } } });
  assert.equal(deleted.response.status, 200);
  const gone = await client.GET("/store/order/{orderId}", { params: { path: { orderId } } });
  assert.equal(gone.response.status, 404);
});

test("a user is created, read, updated and deleted", async () => {
  const username = unique("ts").slice(0, 20).replace(/[^A-Za-z0-9._-]/g, "-");
  const created = await client.POST("/user", {
    body: { username, firstName: "Type", lastName: "Script", email: `${username}@example.com`, password: "secret-password" },
  });
  assert.equal(created.response.status, 200, JSON.stringify(created.error));

  const read = await client.GET("/user/{username}", { params: { path: { username } } });
  assert.equal(read.data?.firstName, "Type");

  const updated = await client.PUT("/user/{username}", {
    params: { path: { username } },
    body: { username, firstName: "Renamed", lastName: "Script", email: `${username}@example.com`, password: "secret-password" },
  });
  assert.equal(updated.response.status, 200, JSON.stringify(updated.error));
  const reread = await client.GET("/user/{username}", { params: { path: { username } } });
  assert.equal(reread.data?.firstName, "Renamed");

  const deleted = await client.DELETE("/user/{username}", { params: { path: { username } } });
  assert.equal(deleted.response.status, 200);
  const gone = await client.GET("/user/{username}", { params: { path: { username } } });
  assert.equal(gone.response.status, 404);
});

test("without credentials a write is refused with the documented error", async () => {
  const refused = await anonymous.POST("/pet", { body: { name: unique("ts-anon"), photoUrls: [] } });
  assert.equal(refused.response.status, 401);
  assert.equal(refused.error?.type, "UNAUTHORIZED");
});
