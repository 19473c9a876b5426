// The TypeScript client against the real server: typed calls, errors, notifications after a
// REST write, and a reconnect that re-authenticates, resubscribes and replays what it missed.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, PetstoreClient } from "../dist/index.js";
import { WS_URL, WebSocketImpl, adminToken, nextNotification, restAddPet, sleep } from "./helpers.mjs";

test("a typed call answers the success result, an error answer throws its code", async () => {
  const client = await PetstoreClient.connect(WS_URL, { WebSocket: WebSocketImpl });
  try {
    const pet = await client.call("getPetById", { petId: 1 });
    assert.equal(pet.id, 1);
    await assert.rejects(client.call("getPetById", { petId: 999_999 }), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, "NOT_FOUND");
      assert.equal(error.status, 404);
      return true;
    });
    // Answers come back matched by correlationId, whatever their order.
    const many = await Promise.all([1, 2, 3, 4].map((petId) => client.call("getPetById", { petId })));
    assert.deepEqual(many.map((pet) => pet.id), [1, 2, 3, 4]);
    assert.ok((await client.ping()) > 0);
  } finally {
    client.close();
  }
});

test("without credentials a write is refused; with a token it succeeds", async () => {
  const client = await PetstoreClient.connect(WS_URL, { WebSocket: WebSocketImpl });
  try {
    await assert.rejects(
      client.call("addPet", { body: { name: "Anon", photoUrls: [] } }),
      (error) => error instanceof ApiError && error.code === "UNAUTHORIZED",
    );
    const session = await client.authenticate(await adminToken());
    assert.equal(session.subject, "admin");
    const pet = await client.call("addPet", { body: { name: "Typed", photoUrls: [] } });
    assert.equal(pet.name, "Typed");
  } finally {
    client.close();
  }
});

test("a subscriber is notified of a REST write", async () => {
  const token = await adminToken();
  const client = await PetstoreClient.connect(WS_URL, { WebSocket: WebSocketImpl, token });
  try {
    const subscribed = await client.subscribe(["pets"]);
    assert.deepEqual(subscribed.topics.includes("pets"), true);
    const created = new Promise((resolve) => {
      const stop = client.on("pet.created", (pet) => {
        if (pet.name === "Notified") {
          stop();
          resolve(pet);
        }
      });
    });
    await restAddPet(token, "Notified");
    const pet = await created;
    assert.equal(pet.name, "Notified");
    assert.ok(client.positions().some((position) => position.topic === "pets" && position.offset > 0));
  } finally {
    client.close();
  }
});

test("after a lost connection the client re-authenticates, resubscribes and replays what it missed, once", async () => {
  const token = await adminToken();
  const client = await PetstoreClient.connect(WS_URL, {
    WebSocket: WebSocketImpl,
    token,
    reconnect: { initialMs: 300, maxMs: 1_000, jitter: 0.2 },
  });
  try {
    await client.subscribe(["pets"]);
    const seen = [];
    client.on("pet.created", (pet) => seen.push(pet.name));
    const before = nextNotification(client, (n) => n.event === "pet.created" && n.payload.name === "Before");
    await restAddPet(token, "Before");
    await before;

    const away = new Promise((resolve) => {
      const stop = client.onStateChange((state) => {
        if (state === "reconnecting") {
          stop();
          resolve();
        }
      });
    });
    client.dropConnection();
    await away;
    // Written once the old connection is closed on both sides, so it can only arrive as a
    // replay after the resubscription with `since` (never on the closing socket).
    await restAddPet(token, "During");
    // A call made during the outage waits for the restored session (authenticated again).
    const notified = nextNotification(client, (n) => n.event === "pet.created" && n.payload.name === "After");
    const after = await client.call("addPet", { body: { name: "After", photoUrls: [] } });
    assert.equal(after.name, "After");
    assert.equal(client.connections, 2);
    await notified;
    await sleep(200);
    assert.deepEqual(seen, ["Before", "During", "After"]);
  } finally {
    client.close();
  }
});
