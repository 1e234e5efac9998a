// graphql-http's client with its defaults against the test server's GraphqlHttpConsumer:
// a query, a mutation with variables, a query that does not validate; prints what it
// saw as one JSON document.
// Usage: node graphql-http-client.mjs http://host:port/graphql/
import { createClient } from "graphql-http";

import { fail, report, watchdog } from "./common.mjs";

watchdog(25);
const url = process.argv[2];
if (!url) fail(new Error(`usage: node ${process.argv[1]} http://host:port/graphql/`));

const client = createClient({ url });

function request(payload) {
  return new Promise((resolve) => {
    let result;
    client.subscribe(payload, {
      next: (value) => {
        result = value;
      },
      // A response that is not 2xx is a NetworkError holding the response.
      error: async (error) => {
        const response = error?.response;
        resolve(
          response
            ? { status: response.status, body: await response.json() }
            : { error: String(error) },
        );
      },
      complete: () => resolve({ result }),
    });
  });
}

try {
  const query = await request({ query: "{ hello }" });
  const mutation = await request({
    query: "mutation Echo($text: String!) { echo(text: $text) }",
    variables: { text: "hi" },
  });
  const invalid = await request({ query: "{ nope }" });
  client.dispose();
  report({ query, mutation, invalid });
} catch (error) {
  fail(error);
}
