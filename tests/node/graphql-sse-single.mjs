// graphql-sse's client in single connection mode (singleConnection: true) against
// GraphqlHttpConsumer: one event stream reserved (PUT) and opened (GET) on the first
// server; a query, a mutation, and a typed subscription that gets the broadcasts of
// mutations sent once its first result (its confirmation) has arrived. With a second
// URL, the operations' POSTs and DELETEs go to that other server process (a fetchFn of
// our own), which forwards them to the stream's process over the channel layer. Prints
// what it saw, and how many requests went where, as one JSON document.
import { createClient } from "graphql-sse";

import { collect, fail, report, watchdog } from "./common.mjs";

watchdog(25);
const url = process.argv[2];
const submitUrl = process.argv[3] || url;
if (!url) {
  fail(new Error(`usage: node ${process.argv[1]} http://host:port/graphql/ [http://other/graphql/]`));
}

const sent = {};
function fetchFn(input, init = {}) {
  const method = init.method || "GET";
  let target = String(input);
  if (method === "POST" || method === "DELETE") target = target.replace(url, submitUrl);
  const where = target.startsWith(submitUrl) && submitUrl !== url ? "other" : "stream";
  sent[`${method} ${where}`] = (sent[`${method} ${where}`] || 0) + 1;
  const response = fetch(target, init);
  if (method === "DELETE") stops.push(response.then((answer) => answer.status));
  return response;
}
const stops = [];

// --8<-- [start:client]
const client = createClient({ url, singleConnection: true, retryAttempts: 0, fetchFn });
// --8<-- [end:client]

const TREE = "subscription { onTree { label } }";
const BROADCAST = 'mutation { broadcastTree(tree: { label: "oak" }) }';

try {
  const query = await collect(client, { query: "{ hello }" }, 1);
  const mutation = await collect(client, { query: BROADCAST }, 1);
  const subscription = await collect(
    client,
    { query: TREE, extensions: { "channels_graphql_typed.confirm": true } },
    3,
    async () => {
      await collect(client, { query: BROADCAST }, 1);
      await collect(client, { query: BROADCAST }, 1);
    },
  );
  // The DELETE of the subscription, sent when it was disposed, is on its way.
  while (!stops.length) await new Promise((resolve) => setTimeout(resolve, 10));
  const stopped = await Promise.all(stops);
  client.dispose();
  report({ query, mutation, subscription, sent, stopped });
} catch (error) {
  fail(error);
}
