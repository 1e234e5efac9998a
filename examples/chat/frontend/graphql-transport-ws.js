// A small client of the graphql-transport-ws protocol
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md), written for the chat
// page: one WebSocket, `connection_init` on open, operations as `subscribe` messages,
// `pong` for every `ping`. When the socket closes it reconnects with a growing delay and
// subscribes again; a query or mutation that was in flight fails instead of being sent
// twice.

export class GraphqlError extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; "));
    this.errors = errors;
  }
}

export class GraphqlTransportWsClient {
  /**
   * @param {string} url - ws:// or wss:// URL of the GraphQL endpoint
   * @param {{onStatus?: (status: string, retryIn?: number) => void}} options
   */
  constructor(url, { onStatus = () => {} } = {}) {
    this.url = url;
    this.onStatus = onStatus;
    this.socket = null;
    this.acknowledged = false;
    this.lastId = 0;
    this.retries = 0;
    this.closing = false;
    this.retryTimer = null;
    /** id -> {payload, sink, oneShot, sent} */
    this.operations = new Map();
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.url, "graphql-transport-ws");
    this.socket = socket;
    this.acknowledged = false;
    this.onStatus("connecting");
    socket.addEventListener("open", () => this.send({ type: "connection_init", payload: {} }));
    socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => this.closed(event));
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
    }
  }

  receive(message) {
    const operation = this.operations.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.acknowledged = true;
        this.retries = 0;
        this.onStatus("connected");
        for (const [id, pending] of this.operations) {
          if (!pending.sent) this.start(id, pending);
        }
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        operation?.sink.next(message.payload);
        break;
      case "error": // the operation failed before it ran: validation or rejection
        this.operations.delete(message.id);
        operation?.sink.error(new GraphqlError(message.payload));
        break;
      case "complete":
        this.operations.delete(message.id);
        operation?.sink.complete();
        break;
    }
  }

  closed(event) {
    this.socket = null;
    this.acknowledged = false;
    if (this.closing) return;
    for (const [id, operation] of this.operations) {
      if (operation.oneShot && operation.sent) {
        this.operations.delete(id);
        operation.sink.error(new Error(`The connection closed (${event.code}) during the request`));
      } else {
        operation.sent = false; // subscriptions start again on the next connection
      }
    }
    const delay = Math.min(10000, 500 * 2 ** this.retries++);
    this.onStatus("disconnected", delay);
    if (this.closing) return; // closed by the status callback
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Close for good: no reconnection, every operation dropped. */
  close() {
    this.closing = true;
    clearTimeout(this.retryTimer);
    this.operations.clear();
    this.socket?.close(1000);
  }

  start(id, operation) {
    operation.sent = true;
    this.send({ type: "subscribe", id, payload: operation.payload });
  }

  add(payload, sink, oneShot) {
    const id = String(++this.lastId);
    const operation = { payload, sink, oneShot, sent: false };
    this.operations.set(id, operation);
    if (this.acknowledged) this.start(id, operation);
    return id;
  }

  /**
   * Start a subscription; `sink.next` gets every result payload ({data, errors}).
   * `extensions` go with the operation (the server's confirmation is asked for there).
   * @returns {() => void} a function that stops the subscription
   */
  subscribe(query, variables, sink, extensions = undefined) {
    const id = this.add({ query, variables, extensions }, sink, false);
    return () => {
      const operation = this.operations.get(id);
      this.operations.delete(id);
      if (operation?.sent) this.send({ type: "complete", id });
    };
  }

  /** Run a query or mutation; resolves to its `data`, rejects with its errors. */
  request(query, variables) {
    return new Promise((resolve, reject) => {
      let result = null;
      this.add({ query, variables }, {
        next: (payload) => { result = payload; },
        error: reject,
        complete: () => {
          if (result?.errors?.length) reject(new GraphqlError(result.errors));
          else resolve(result?.data ?? null);
        },
      }, true);
    });
  }
}
