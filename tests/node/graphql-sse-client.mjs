// graphql-sse's client with its defaults (distinct connections mode) against the test
// server's GraphqlHttpConsumer: a query, then a typed subscription that gets the
// broadcasts a mutation sends once the subscription's first result (its confirmation)
// has arrived; prints what it saw as one JSON document.
import { createClient } from "graphql-sse";

import { collect, fail, report, watchdog } from "./common.mjs";

watchdog(25);
const url = process.argv[2];
if (!url) fail(new Error(`usage: node ${process.argv[1]} http://host:port/graphql/`));

const client = createClient({ url, retryAttempts: 0 });

const TREE = "subscription { onTree { label } }";
const BROADCAST = 'mutation { broadcastTree(tree: { label: "oak" }) }';

try {
  const query = await collect(client, { query: "{ hello }" }, 1);
  const subscription = await collect(
    client,
    { query: TREE, extensions: { "channels_graphql_typed.confirm": true } },
    3,
    async () => {
      await collect(client, { query: BROADCAST }, 1);
      await collect(client, { query: BROADCAST }, 1);
    },
  );
  client.dispose();
  report({ query, subscription });
} catch (error) {
  fail(error);
}
