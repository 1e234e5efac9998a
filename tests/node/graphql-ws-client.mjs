// The `graphql-ws` npm client (graphql-transport-ws subprotocol) against the test server.
// Usage: node graphql-ws-client.mjs ws://127.0.0.1:PORT
// Prints {"subprotocol", "query", "mutation", "subscription", "hooks", "rejected"}.

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import {
  MUTATION,
  QUERY,
  SUBSCRIPTION,
  baseUrl,
  describeError,
  fail,
  report,
  watchdog,
} from "./common.mjs";

/** Run one operation to its end; resolve with every result, reject with the error. */
function run(client, query) {
  return new Promise((resolve, reject) => {
    const results = [];
    client.subscribe(
      { query },
      {
        next: (result) => results.push(result),
        error: reject,
        complete: () => resolve(results),
      },
    );
  });
}

function connect(url, options = {}) {
  let subprotocol = null;
  let ackPayload;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    // Keep one socket across the sequential operations (lazy mode would close it
    // whenever no operation is active); dispose() closes it at once.
    lazyCloseTimeout: 10_000,
    ...options,
    on: {
      connected: (socket, payload) => {
        subprotocol = socket.protocol;
        ackPayload = payload;
      },
    },
  });
  return { client, info: () => ({ subprotocol, ackPayload }) };
}

async function main() {
  watchdog(20);
  const base = baseUrl();

  const { client, info } = connect(`${base}/graphql/`);
  const query = await run(client, QUERY);
  const mutation = await run(client, MUTATION);
  const subscription = await run(client, SUBSCRIPTION);
  const { subprotocol } = info();
  await client.dispose();

  const hooksConnection = connect(`${base}/hooks/`, { connectionParams: { token: "secret" } });
  const hooksQuery = await run(hooksConnection.client, QUERY);
  const hooks = { ack: hooksConnection.info().ackPayload ?? null, query: hooksQuery };
  await hooksConnection.client.dispose();

  const rejectedConnection = connect(`${base}/hooks/`, { connectionParams: { token: "wrong" } });
  let rejected = null;
  try {
    await run(rejectedConnection.client, QUERY);
  } catch (error) {
    rejected = describeError(error);
  }
  await rejectedConnection.client.dispose();

  report({ subprotocol, query, mutation, subscription, hooks, rejected });
}

main().catch(fail);
