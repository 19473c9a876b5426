// The hand-written runtime of the TypeScript client, typed by the generated contract
// (generated.ts). The same features as the Rust client (crates/petstore-client):
//
// - requests matched to responses by correlationId, in any order, each with a timeout;
// - `call(action, payload)` typed by the action map: the payload checked at compile time, the
//   success result typed, an error answer thrown as an `ApiError` with the server's code;
// - notifications, typed by the event map;
// - reconnect after a lost connection, with exponential backoff and jitter; on the new
//   connection the session is restored before any queued call goes out: re-authenticated with
//   the last accepted access token, resubscribed with the last position seen per topic (`since`),
//   so missed events are replayed; events seen already are dropped, and a topic that cannot be
//   resumed is reported as a `client.recovery_failed` notification, never passed over.
//
// It uses only the WebSocket API browsers have. Node 22+ has a global `WebSocket`; on Node 20
// pass a constructor (`import WebSocket from "ws"`) as the `WebSocket` option.

import type {
  Action,
  ErrorPayload,
  EventMap,
  EventName,
  PayloadOf,
  ResultOf,
  SessionPayload,
  StreamPosition,
  SubscribedPayload,
  TokenResponse,
} from "./generated.js";

/** The constructor of a WebSocket: the browser's, Node 22's global one, or the `ws` package's. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What the client uses of a WebSocket (the browser API; `ws` implements it too). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** How to come back after a lost connection: exponential backoff with jitter. */
export interface ReconnectPolicy {
  /** Delay before the first attempt, in milliseconds. */
  initialMs: number;
  /** What each failed attempt multiplies the delay by (below 1 counts as 1). */
  factor: number;
  /** The longest delay, in milliseconds. */
  maxMs: number;
  /** The fraction of a delay randomly taken off, in [0, 1], so clients dropped together do not
   * all come back in the same instant. */
  jitter: number;
  /** Give up after this many failed attempts in a row; `null` retries while the client lives. */
  maxAttempts: number | null;
}

/** The defaults of the Rust client. */
export const DEFAULT_RECONNECT: ReconnectPolicy = {
  initialMs: 100,
  factor: 2,
  maxMs: 5_000,
  jitter: 0.2,
  maxAttempts: null,
};

/** The delay before attempt `attempt` (0 for the first); `unit` is a random number in [0, 1). */
export function reconnectDelay(policy: ReconnectPolicy, attempt: number, unit: number): number {
  const factor = Number.isFinite(policy.factor) ? Math.max(policy.factor, 1) : 1;
  const base = Math.min(policy.initialMs * factor ** Math.min(attempt, 1024), policy.maxMs);
  const jitter = Number.isFinite(policy.jitter) ? Math.min(Math.max(policy.jitter, 0), 1) : 0;
  const delay = base * (1 - jitter * Math.min(Math.max(unit, 0), 1));
  return Number.isFinite(delay) ? delay : policy.maxMs;
}

/** How to connect. */
export interface ClientOptions {
  /** The WebSocket constructor; default: the global `WebSocket` (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor;
  /** An access token to `authenticate` with as soon as the connection opens. */
  token?: string;
  /** How long to wait for the connection to open, in milliseconds (default 10 s). */
  connectTimeoutMs?: number;
  /** How long a call waits for its answer, in milliseconds (default 10 s). */
  requestTimeoutMs?: number;
  /** Reconnect policy, or `false` to stay closed after a lost connection. */
  reconnect?: Partial<ReconnectPolicy> | false;
  /** Random numbers in [0, 1) for the jitter (default `Math.random`). */
  random?: () => number;
}

/** A notification as the server sent it (or the client's own `client.recovery_failed`). */
export interface Notification<E extends string = string> {
  event: E;
  correlationId?: string;
  timestamp?: number;
  /** The history `positions` belong to (events addressed to topics only). */
  epoch?: string;
  /** The event's offset in each topic it is addressed to. */
  positions: Record<string, number>;
  payload: E extends EventName ? EventMap[E] : unknown;
}

/** The event name of the client's own notification for a topic that could not be resumed. */
export const RECOVERY_FAILED = "client.recovery_failed";

/** The payload of a `client.recovery_failed` notification: the server's answer for the topic. */
export type RecoveryFailure = SubscribedPayload["positions"][number];

/** The server answered a request with an error. */
export class ApiError extends Error {
  /** `NOT_FOUND`, `VALIDATION_ERROR`, … (the same codes as REST). */
  readonly code: string;
  /** The HTTP status REST answers the same error with. */
  readonly status: number;
  /** Field errors, or `{retryAfter}`; otherwise null. */
  readonly details: ErrorPayload["details"];

  constructor(payload: ErrorPayload) {
    super(`${payload.code} (${payload.status}): ${payload.message}`);
    this.name = "ApiError";
    this.code = payload.code;
    this.status = payload.status;
    this.details = payload.details;
  }
}

/** No answer within the request timeout. */
export class TimeoutError extends Error {
  constructor(action: string, ms: number) {
    super(`no answer to ${action} within ${ms} ms`);
    this.name = "TimeoutError";
  }
}

/** The connection was lost (or closed) while the call waited, or could not be opened. */
export class ConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConnectionError";
  }
}

/** The connection's state, as `onStateChange` reports it. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

const OPEN = 1;

interface Pending {
  action: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Queued {
  text: string;
  correlationId: string;
}

type Listener = (notification: Notification) => void;

/** A WebSocket client of petstore-ws. Create one with {@link PetstoreClient.connect}. */
export class PetstoreClient {
  readonly #url: string;
  readonly #WebSocket: WebSocketConstructor;
  readonly #requestTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #policy: ReconnectPolicy | null;
  readonly #random: () => number;

  #socket: WebSocketLike | null = null;
  #state: ConnectionState = "connecting";
  /** Calls waiting for their answer, by correlationId. */
  readonly #pending = new Map<string, Pending>();
  /** Calls made while the connection is down or being restored: sent once it is back. */
  #queue: Queued[] = [];
  #restoring = false;
  #closedByUser = false;
  #connections = 0;

  /** The last access token the server accepted: re-authentication after a reconnect. */
  #token: string | null = null;
  /** The topics the server accepted, in the order they were subscribed. */
  readonly #topics = new Set<string>();
  /** The last position seen per followed topic. */
  readonly #positions = new Map<string, { offset: number; epoch: string }>();

  readonly #listeners = new Set<Listener>();
  readonly #stateListeners = new Set<(state: ConnectionState) => void>();

  private constructor(url: string, options: ClientOptions) {
    const WebSocketImpl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocketImpl === undefined) {
      throw new ConnectionError(
        "no WebSocket implementation: Node 20 has no global WebSocket; pass one as the " +
          '`WebSocket` option (import WebSocket from "ws"), or use Node 22+',
      );
    }
    this.#url = url;
    this.#WebSocket = WebSocketImpl;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#policy =
      options.reconnect === false ? null : { ...DEFAULT_RECONNECT, ...(options.reconnect ?? {}) };
    this.#random = options.random ?? Math.random;
  }

  /**
   * Opens a connection to `url` (`ws://host:port/api/v3/ws`) and, given a token,
   * authenticates the session before resolving.
   */
  static async connect(url: string, options: ClientOptions = {}): Promise<PetstoreClient> {
    const client = new PetstoreClient(url, options);
    const socket = await client.#open();
    client.#attach(socket);
    if (options.token !== undefined) {
      await client.authenticate(options.token);
    }
    return client;
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** How many connections the client has opened (1 + successful reconnects). */
  get connections(): number {
    return this.#connections;
  }

  /** The topics the session follows. */
  get topics(): string[] {
    return [...this.#topics];
  }

  /** The last position seen per followed topic (what a reconnect resumes from). */
  positions(): StreamPosition[] {
    return [...this.#positions].map(([topic, { offset, epoch }]) => ({ topic, offset, epoch }));
  }

  /**
   * Calls an action: an operation (`getPetById`, `addPet`, …) or a control action. Resolves
   * with the success result; rejects with an {@link ApiError} for an error answer, a
   * {@link TimeoutError}, or a {@link ConnectionError} when the connection was lost meanwhile.
   *
   * A call made while the connection is down waits for it to come back (within its timeout).
   * `correlationId` is also a write's idempotency key: pass the same one to retry a write
   * safely.
   */
  call<A extends Action>(
    action: A,
    payload: PayloadOf<A>,
    options: { timeoutMs?: number; correlationId?: string } = {},
  ): Promise<ResultOf<A>> {
    return this.#request(action, payload, options, false) as Promise<ResultOf<A>>;
  }

  /** Authenticates the session with an access token, kept for re-authentication. */
  async authenticate(token: string): Promise<SessionPayload> {
    const session = await this.call("authenticate", { token });
    this.#token = token;
    return session;
  }

  /** Exchanges a refresh token for new tokens; the session goes on with the new access token. */
  async refresh(refreshToken: string): Promise<TokenResponse> {
    const tokens = await this.call("refresh", { refreshToken });
    this.#token = tokens.accessToken;
    return tokens;
  }

  /**
   * Follows topics (`pets`, `pet:7`, `orders`, `order:3`, `inventory`). Their events arrive
   * as notifications; the client keeps each topic's position to resume after a reconnect.
   */
  async subscribe(topics: string[]): Promise<SubscribedPayload> {
    // Followed from the moment the request leaves: the server may push the topics' first
    // events right behind its answer, before this continuation runs, and their positions must
    // be recorded. A refusal takes back what this call added.
    const added = topics.filter((topic) => !this.#topics.has(topic));
    for (const topic of added) {
      this.#topics.add(topic);
    }
    let answer: SubscribedPayload;
    try {
      answer = await this.call("subscribe", { topics });
    } catch (error) {
      for (const topic of added) {
        this.#topics.delete(topic);
      }
      throw error;
    }
    for (const position of answer.positions) {
      this.#place(position);
    }
    return answer;
  }

  /** Stops following topics. */
  async unsubscribe(topics: string[]): Promise<string[]> {
    const answer = await this.call("unsubscribe", { topics });
    for (const topic of topics) {
      this.#topics.delete(topic);
      this.#positions.delete(topic);
    }
    return answer.topics;
  }

  /** Application-level ping: resolves with the server's clock. */
  async ping(): Promise<number> {
    const pong = await this.call("ping", {});
    return pong.timestamp;
  }

  /** Calls `listener` with every notification of `event`; returns the function that stops it. */
  on<E extends EventName>(
    event: E,
    listener: (payload: EventMap[E], notification: Notification<E>) => void,
  ): () => void {
    return this.onNotification((notification) => {
      if (notification.event === event) {
        listener(notification.payload as EventMap[E], notification as Notification<E>);
      }
    });
  }

  /** Calls `listener` with a topic that could not be resumed after a reconnect. */
  onRecoveryFailed(listener: (failure: RecoveryFailure) => void): () => void {
    return this.onNotification((notification) => {
      if (notification.event === RECOVERY_FAILED) {
        listener(notification.payload as RecoveryFailure);
      }
    });
  }

  /** Calls `listener` with every notification; returns the function that stops it. */
  onNotification(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `listener` on every change of the connection's state. */
  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Closes the connection for good; waiting calls fail with a {@link ConnectionError}. */
  close(): void {
    this.#closedByUser = true;
    this.#setState("closed");
    this.#socket?.close(1000, "client closed");
    this.#socket = null;
    this.#failAll("the client was closed");
  }

  /** Closes the current connection as if the network dropped it (tests of reconnects). */
  dropConnection(): void {
    this.#socket?.close(4000, "dropped by the client");
  }

  #request(
    action: string,
    payload: unknown,
    options: { timeoutMs?: number; correlationId?: string },
    restoring: boolean,
  ): Promise<unknown> {
    if (this.#closedByUser) {
      return Promise.reject(new ConnectionError("the client was closed"));
    }
    const correlationId = options.correlationId ?? uuid();
    const timeoutMs = options.timeoutMs ?? this.#requestTimeoutMs;
    const text = JSON.stringify({
      type: "request",
      correlationId,
      timestamp: Date.now(),
      action,
      payload,
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(correlationId);
        this.#queue = this.#queue.filter((queued) => queued.correlationId !== correlationId);
        reject(new TimeoutError(action, timeoutMs));
      }, timeoutMs);
      this.#pending.set(correlationId, { action, resolve, reject, timer });
      const ready = this.#socket !== null && this.#socket.readyState === OPEN;
      if (ready && (restoring || !this.#restoring)) {
        this.#socket?.send(text);
      } else {
        this.#queue.push({ text, correlationId });
      }
    });
  }

  #open(): Promise<WebSocketLike> {
    return new Promise((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = new this.#WebSocket(this.#url);
      } catch (error) {
        reject(new ConnectionError(`cannot open ${this.#url}: ${String(error)}`));
        return;
      }
      const timer = setTimeout(() => {
        socket.onopen = socket.onclose = socket.onerror = null;
        socket.close();
        reject(new ConnectionError(`${this.#url} did not open within ${this.#connectTimeoutMs} ms`));
      }, this.#connectTimeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(socket);
      };
      socket.onerror = () => {};
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(new ConnectionError(`${this.#url} closed before opening (${event.code})`));
      };
    });
  }

  #attach(socket: WebSocketLike): void {
    this.#socket = socket;
    this.#connections += 1;
    socket.onmessage = (event) => this.#receive(event.data);
    socket.onerror = () => {};
    socket.onclose = (event) => this.#lost(socket, event.code, event.reason);
    this.#setState("open");
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") {
      return;
    }
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    if (frame.type === "notification") {
      this.#notification(frame);
      return;
    }
    if (frame.type !== "response" || typeof frame.correlationId !== "string") {
      return;
    }
    const pending = this.#pending.get(frame.correlationId);
    if (pending === undefined) {
      return;
    }
    this.#pending.delete(frame.correlationId);
    clearTimeout(pending.timer);
    if (frame.status === "success") {
      pending.resolve(frame.payload ?? null);
    } else {
      pending.reject(new ApiError(frame.payload as ErrorPayload));
    }
  }

  #notification(frame: Record<string, unknown>): void {
    const notification: Notification = {
      event: String(frame.event),
      positions: (frame.positions as Record<string, number> | undefined) ?? {},
      payload: frame.payload as never,
    };
    if (typeof frame.correlationId === "string") notification.correlationId = frame.correlationId;
    if (typeof frame.timestamp === "number") notification.timestamp = frame.timestamp;
    if (typeof frame.epoch === "string") notification.epoch = frame.epoch;
    if (this.#advance(notification)) {
      this.#emit(notification);
    }
  }

  /**
   * Records a notification's positions in the followed topics; false when every followed topic
   * it is in has seen it already (a replay overlapping what arrived before a reconnect).
   */
  #advance(notification: Notification): boolean {
    const epoch = notification.epoch;
    if (epoch === undefined) {
      return true;
    }
    let followed = false;
    let fresh = false;
    for (const [topic, offset] of Object.entries(notification.positions)) {
      if (!this.#topics.has(topic)) {
        continue;
      }
      followed = true;
      const seen = this.#positions.get(topic);
      if (seen === undefined || seen.epoch !== epoch || offset > seen.offset) {
        this.#positions.set(topic, { offset, epoch });
        fresh = true;
      }
    }
    return fresh || !followed;
  }

  /** Records where the server says a topic stands (a `subscribe` answer). */
  #place(position: { topic: string; offset: number; epoch: string }): void {
    const seen = this.#positions.get(position.topic);
    if (seen === undefined || seen.epoch !== position.epoch || position.offset > seen.offset) {
      this.#positions.set(position.topic, { offset: position.offset, epoch: position.epoch });
    }
  }

  #emit(notification: Notification): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(notification);
      } catch (error) {
        // One failing listener must not starve the others.
        console.error("petstore-ws client: a notification listener threw", error);
      }
    }
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of [...this.#stateListeners]) {
      listener(state);
    }
  }

  #failAll(reason: string): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new ConnectionError(`${reason} before ${pending.action} was answered`));
      this.#pending.delete(id);
    }
    this.#queue = [];
  }

  /** The connection closed: fail what was in flight, then come back if the policy allows. */
  #lost(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = null;
    // What was sent may or may not have run; only the caller can tell whether to retry (a write
    // retried with the same correlationId runs once). Queued calls wait for the reconnect.
    const queued = new Set(this.#queue.map((entry) => entry.correlationId));
    for (const [id, pending] of this.#pending) {
      if (queued.has(id)) continue;
      clearTimeout(pending.timer);
      pending.reject(
        new ConnectionError(`connection closed (${code} ${reason}) before ${pending.action} was answered`),
      );
      this.#pending.delete(id);
    }
    if (this.#closedByUser || this.#policy === null) {
      this.#setState("closed");
      this.#failAll("the connection closed");
      return;
    }
    this.#setState("reconnecting");
    void this.#reconnect(this.#policy);
  }

  async #reconnect(policy: ReconnectPolicy): Promise<void> {
    for (let attempt = 0; policy.maxAttempts === null || attempt < policy.maxAttempts; attempt++) {
      await sleep(reconnectDelay(policy, attempt, this.#random()));
      if (this.#closedByUser) return;
      let socket: WebSocketLike;
      try {
        socket = await this.#open();
      } catch {
        continue;
      }
      if (this.#closedByUser) {
        socket.close(1000, "client closed");
        return;
      }
      this.#restoring = true;
      this.#attach(socket);
      try {
        await this.#restore();
      } finally {
        this.#restoring = false;
      }
      if (this.#socket !== socket) {
        // Lost again while restoring: that close started another round.
        return;
      }
      const queue = this.#queue;
      this.#queue = [];
      for (const queued of queue) {
        if (this.#pending.has(queued.correlationId)) {
          socket.send(queued.text);
        }
      }
      return;
    }
    this.#setState("closed");
    this.#failAll("reconnecting gave up");
  }

  /**
   * Re-authenticates and resubscribes on a fresh connection, before any queued call goes out.
   * A refusal is not fatal: the session goes on without it, as it would have once the token
   * expired.
   */
  async #restore(): Promise<void> {
    if (this.#token !== null) {
      try {
        await this.#request("authenticate", { token: this.#token }, {}, true);
      } catch (error) {
        console.warn("petstore-ws client: re-authentication refused", error);
      }
    }
    const topics = [...this.#topics];
    for (let start = 0; start < topics.length; start += 50) {
      const chunk = topics.slice(start, start + 50);
      const since = chunk.flatMap((topic) => {
        const seen = this.#positions.get(topic);
        return seen === undefined ? [] : [{ topic, offset: seen.offset, epoch: seen.epoch }];
      });
      const payload = since.length > 0 ? { topics: chunk, since } : { topics: chunk };
      try {
        const answer = (await this.#request("subscribe", payload, {}, true)) as SubscribedPayload;
        this.#resumed(answer);
      } catch (error) {
        console.warn("petstore-ws client: resubscribing refused", error);
      }
    }
  }

  /** A `subscribe` answer on a restored connection: positions, and the topics not resumed. */
  #resumed(answer: SubscribedPayload): void {
    for (const position of answer.positions) {
      if (position.recovered === false) {
        // The live events go on from the server's position, in whatever epoch.
        this.#positions.set(position.topic, { offset: position.offset, epoch: position.epoch });
        this.#emit({
          event: RECOVERY_FAILED,
          timestamp: Date.now(),
          positions: {},
          payload: position as never,
        });
      } else {
        // The answer's offset stands after the replayed events that follow it; until they
        // arrive the client has seen only what came before them (placing the answer's offset
        // would drop the replay as duplicates).
        const replayed = position.replayed ?? 0;
        this.#place({ ...position, offset: Math.max(0, position.offset - replayed) });
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A version 4 UUID from the platform's random source (works outside secure contexts too). */
function uuid(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
