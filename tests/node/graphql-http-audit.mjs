// graphql-http's server audits (GraphQL over HTTP conformance) against a GraphqlHttpConsumer
// (the test server's, the chat example's); prints every audit's id, name and status as one
// JSON document.
import { serverAudits } from "graphql-http";

import { fail, report, watchdog } from "./common.mjs";

watchdog(25);
const url = process.argv[2];
if (!url) fail(new Error(`usage: node ${process.argv[1]} http://host:port/graphql/`));

try {
  const results = [];
  for (const audit of serverAudits({ url, fetchFn: fetch })) {
    const result = await audit.fn();
    results.push({ id: audit.id, name: audit.name, status: result.status });
  }
  report(results);
} catch (error) {
  fail(error);
}
