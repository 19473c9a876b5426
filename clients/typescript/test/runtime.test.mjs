// The client's runtime against a scripted WebSocket (no server): backoff, timeouts, dropping
// replayed duplicates and reporting a topic that could not be resumed.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULT_RECONNECT,
  PetstoreClient,
  RECOVERY_FAILED,
  TimeoutError,
  reconnectDelay,
} from "../dist/index.js";

/** A scripted server: `answer(request, socket)` replies to each request frame. */
function scripted(answer) {
  const sockets = [];
  class FakeSocket {
    readyState = 0;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;
    constructor() {
      sockets.push(this);
      setTimeout(() => {
        this.readyState = 1;
        this.onopen?.({});
      }, 0);
    }
    send(text) {
      const request = JSON.parse(text);
      setTimeout(() => answer(request, this, sockets.length), 0);
    }
    push(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    close(code = 1000, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      setTimeout(() => this.onclose?.({ code, reason }), 0);
    }
  }
  return { FakeSocket, sockets };
}

function success(request, payload) {
  return { type: "response", correlationId: request.correlationId, timestamp: 0, status: "success", payload };
}

function petCreated(offset, epoch = "e1") {
  return {
    type: "notification",
    correlationId: `n-${epoch}-${offset}`,
    timestamp: 0,
    event: "pet.created",
    epoch,
    positions: { pets: offset },
    payload: { id: offset, name: `pet ${offset}`, photoUrls: [] },
  };
}

test("the reconnect delay grows exponentially, is capped and jittered", () => {
  const policy = { ...DEFAULT_RECONNECT, initialMs: 100, factor: 2, maxMs: 1_000, jitter: 0.5 };
  assert.equal(reconnectDelay(policy, 0, 0), 100);
  assert.equal(reconnectDelay(policy, 3, 0), 800);
  assert.equal(reconnectDelay(policy, 10, 0), 1_000);
  assert.equal(reconnectDelay(policy, 10, 0.999_999), 1_000 * (1 - 0.5 * 0.999_999));
  assert.equal(reconnectDelay({ ...policy, factor: Number.NaN }, 5, 0), 100);
});

test("a call without an answer times out", async () => {
  const { FakeSocket } = scripted(() => {});
  const client = await PetstoreClient.connect("ws://fake", { WebSocket: FakeSocket, requestTimeoutMs: 50 });
  await assert.rejects(client.call("ping", {}), TimeoutError);
  client.close();
});

test("a missing WebSocket implementation is explained", async () => {
  const saved = globalThis.WebSocket;
  try {
    delete globalThis.WebSocket;
    await assert.rejects(PetstoreClient.connect("ws://fake"), /pass one as the `WebSocket` option/);
  } finally {
    if (saved !== undefined) globalThis.WebSocket = saved;
  }
});

test("a resumed topic's replay overlapping what was seen is delivered once; a lost one is reported", async () => {
  const subscribes = [];
  const { FakeSocket, sockets } = scripted((request, socket, connection) => {
    if (request.action === "authenticate") {
      socket.push(success(request, { subject: "u", roles: [], scopes: [], expiresAt: null }));
    } else if (request.action === "subscribe") {
      subscribes.push(request.payload);
      if (connection === 1) {
        socket.push(success(request, { topics: ["pets", "pet:1"], positions: [
          { topic: "pets", offset: 0, epoch: "e1" },
          { topic: "pet:1", offset: 0, epoch: "e1" },
        ] }));
        socket.push(petCreated(1));
        socket.push(petCreated(2));
      } else {
        socket.push(success(request, { topics: ["pets", "pet:1"], positions: [
          { topic: "pets", offset: 3, epoch: "e1", recovered: true, replayed: 2 },
          { topic: "pet:1", offset: 9, epoch: "e2", recovered: false, reason: "epoch_changed" },
        ] }));
        // The replay overlaps offset 2, already seen.
        socket.push(petCreated(2));
        socket.push(petCreated(3));
      }
    }
  });
  const client = await PetstoreClient.connect("ws://fake", {
    WebSocket: FakeSocket,
    token: "t",
    reconnect: { initialMs: 1, jitter: 0 },
  });
  const events = [];
  const failures = [];
  client.on("pet.created", (pet) => events.push(pet.id));
  client.onRecoveryFailed((failure) => failures.push(failure));
  await client.subscribe(["pets", "pet:1"]);
  while (events.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));

  sockets[0].close(1012, "restart");
  while (events.length < 3 || failures.length < 1) await new Promise((resolve) => setTimeout(resolve, 5));

  assert.deepEqual(events, [1, 2, 3]);
  assert.deepEqual(subscribes[1], {
    topics: ["pets", "pet:1"],
    since: [
      { topic: "pets", offset: 2, epoch: "e1" },
      { topic: "pet:1", offset: 0, epoch: "e1" },
    ],
  });
  assert.equal(failures.length, 1);
  assert.equal(failures[0].topic, "pet:1");
  assert.equal(failures[0].reason, "epoch_changed");
  assert.ok(client.positions().some((p) => p.topic === "pet:1" && p.offset === 9 && p.epoch === "e2"));
  assert.equal(RECOVERY_FAILED, "client.recovery_failed");
  client.close();
});
