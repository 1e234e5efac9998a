// Apollo Client 4 over its HttpLink, with its defaults, against the test server's
// GraphqlHttpConsumer: a query, a mutation, a typed subscription (Apollo's multipart
// protocol) that gets the broadcasts of two mutations sent once its response has
// started, a subscription whose document is invalid and one whose subscribe fails; prints what it saw as one JSON document.
// Usage: node apollo-http-client.mjs http://host:port/graphql/ [http://other:port/graphql/]
// (the broadcasting mutations go to the second URL when there is one: another process).
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

import { describeError, fail, report, watchdog, withoutTypename } from "./common.mjs";

watchdog(25);
const [url, broadcastUrl = url] = process.argv.slice(2);
if (!url) fail(new Error(`usage: node ${process.argv[1]} http://host:port/graphql/ [URL]`));

// The default fetch, watched: the server starts a subscription's response once the
// subscription is in its groups, so from then on no broadcast passes it by.
const responses = [];
let responseStarted = () => {};
async function watchedFetch(input, init) {
  const response = await fetch(input, init);
  responses.push({
    accept: new Headers(init?.headers).get("accept"),
    status: response.status,
    contentType: response.headers.get("content-type"),
  });
  responseStarted();
  return response;
}

// --8<-- [start:link]
const client = new ApolloClient({
  link: new HttpLink({ uri: url, fetch: watchedFetch }),
  cache: new InMemoryCache(),
});
// --8<-- [end:link]
const broadcaster = new ApolloClient({
  link: new HttpLink({ uri: broadcastUrl, fetch: watchedFetch }),
  cache: new InMemoryCache(),
});

const BROADCAST = gql('mutation Broadcast { broadcastTree(tree: { label: "oak" }) }');

function subscription(query, count) {
  return new Promise((resolve, reject) => {
    const results = [];
    const started = new Promise((done) => {
      responseStarted = done;
    });
    const observed = client.subscribe({ query: gql(query) }).subscribe({
      next(result) {
        if (result.error) {
          observed.unsubscribe();
          resolve({ results, error: describeError(result.error) });
          return;
        }
        results.push({ data: withoutTypename(result.data) });
        if (results.length === count) {
          // Aborts the request: the server stops the subscription.
          observed.unsubscribe();
          resolve({ results });
        }
      },
      error: (error) => resolve({ results, error: describeError(error) }),
      complete: () => resolve({ results, completed: true }),
    });
    started
      .then(async () => {
        if (count === 0) return;
        // Heartbeats (the test server sends them every 0.2 s) come first: ignored.
        await new Promise((done) => setTimeout(done, 500));
        await broadcaster.mutate({ mutation: BROADCAST });
        await broadcaster.mutate({ mutation: BROADCAST });
      })
      .catch(reject);
  });
}

try {
  const query = await client.query({ query: gql("query Hello { hello }"), fetchPolicy: "no-cache" });
  const mutation = await client.mutate({ mutation: gql('mutation Echo { echo(text: "hi") }') });
  const tree = await subscription("subscription OnTree { onTree { label } }", 2);
  const refused = await subscription("subscription Nope { nope }", 0);
  const failed = await subscription("subscription Failed { onSlowPublish(delay: -1) { value } }", 0);
  report({
    query: withoutTypename(query.data),
    mutation: withoutTypename(mutation.data),
    subscription: tree,
    refused,
    failed,
    responses,
  });
} catch (error) {
  fail(error);
}
