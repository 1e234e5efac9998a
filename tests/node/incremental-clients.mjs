// Incremental delivery (@defer, @stream) from real clients with their defaults against
// the test server's IncrementalHttpConsumer: Apollo Client 4's HttpLink with its
// GraphQL17Alpha9Handler (multipart, incrementalSpec=v0.2) and graphql-sse's client in
// both modes; prints what each saw as one JSON document.
// Usage: node incremental-clients.mjs http://host:port/incremental/
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQL17Alpha9Handler } from "@apollo/client/incremental";
import { createClient } from "graphql-sse";

import { collect, fail, report, watchdog, withoutTypename } from "./common.mjs";

watchdog(25);
const url = process.argv[2];
if (!url) fail(new Error(`usage: node ${process.argv[1]} http://host:port/incremental/`));

const DEFERRED =
  '{ shelf ... @defer(label: "books") { books { id ... @defer(label: "title") { title } } } }';
const STREAMED = "{ words(count: 4) @stream(initialCount: 1) }";

const responses = [];
async function watchedFetch(input, init) {
  const response = await fetch(input, init);
  responses.push({
    accept: new Headers(init?.headers).get("accept"),
    contentType: response.headers.get("content-type"),
  });
  return response;
}

// Every state Apollo's watchQuery goes through until the result is complete.
function apolloStates(query) {
  const client = new ApolloClient({
    link: new HttpLink({ uri: url, fetch: watchedFetch }),
    cache: new InMemoryCache(),
    incrementalHandler: new GraphQL17Alpha9Handler(),
  });
  return new Promise((resolve, reject) => {
    const states = [];
    const subscription = client
      .watchQuery({ query: gql(query), fetchPolicy: "network-only" })
      .subscribe({
        next(result) {
          if (result.data === undefined) return; // the loading state before any data
          states.push({
            data: withoutTypename(result.data),
            dataState: result.dataState,
            networkStatus: result.networkStatus,
          });
          // Streamed items keep coming after the data's shape is complete: the network
          // status says when the response has ended (7: ready).
          if (result.dataState === "complete" && result.networkStatus === 7) {
            subscription.unsubscribe();
            resolve(states);
          }
        },
        error: reject,
      });
  });
}

try {
  const apollo = {
    deferred: await apolloStates(DEFERRED),
    streamed: await apolloStates(STREAMED),
    responses,
  };
  const sse = {};
  for (const singleConnection of [false, true]) {
    const client = createClient({ url, retryAttempts: 0, singleConnection });
    sse[singleConnection ? "single" : "distinct"] = {
      deferred: await collect(client, { query: DEFERRED }, 100),
      streamed: await collect(client, { query: STREAMED }, 100),
    };
    client.dispose();
  }
  report({ apollo, sse });
} catch (error) {
  fail(error);
}
