// Apollo's legacy `subscriptions-transport-ws` client (graphql-ws subprotocol) against
// the test server. Usage: node subscriptions-transport-ws-client.mjs ws://127.0.0.1:PORT
// Prints {"subprotocol", "query", "mutation", "subscription", "hooks", "rejected"}.

import subscriptionsTransportWs from "subscriptions-transport-ws";
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

const { SubscriptionClient } = subscriptionsTransportWs;

/** Run one operation to its end; resolve with every result, reject with the error. */
function run(client, query) {
  return new Promise((resolve, reject) => {
    const results = [];
    client.request({ query }).subscribe({
      next: (result) => results.push(result),
      error: reject,
      complete: () => resolve(results),
    });
  });
}

/**
 * Connect and wait for the server's answer to connection_init: resolve with the client
 * and the ack payload, or reject with the connection_error payload.
 */
function connect(url, connectionParams = {}) {
  return new Promise((resolve, reject) => {
    let ackPayload;
    const client = new SubscriptionClient(
      url,
      {
        reconnect: false,
        connectionParams,
        connectionCallback: (error) => {
          if (error) {
            client.close();
            reject(error);
          } else {
            resolve({ client, ackPayload: ackPayload ?? null });
          }
        },
      },
      WebSocket,
    );
    // "connected" carries the ack payload; it is emitted just before connectionCallback.
    client.onConnected((payload) => {
      ackPayload = payload;
    });
  });
}

async function main() {
  watchdog(20);
  const base = baseUrl();

  const { client } = await connect(`${base}/graphql/`);
  const subprotocol = client.client.protocol;
  const query = await run(client, QUERY);
  const mutation = await run(client, MUTATION);
  const subscription = await run(client, SUBSCRIPTION);
  client.close();

  const hooksConnection = await connect(`${base}/hooks/`, { token: "secret" });
  const hooksQuery = await run(hooksConnection.client, QUERY);
  const hooks = { ack: hooksConnection.ackPayload, query: hooksQuery };
  hooksConnection.client.close();

  let rejected = null;
  try {
    await connect(`${base}/hooks/`, { token: "wrong" });
  } catch (error) {
    rejected = describeError(error);
  }

  report({ subprotocol, query, mutation, subscription, hooks, rejected });
}

main().catch(fail);
