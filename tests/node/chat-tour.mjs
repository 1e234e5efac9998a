// The README's tour of the chat example, by one standard client with its defaults (no
// Origin header, no confirmation asked for).
// Usage: node chat-tour.mjs graphql-ws|subscriptions-transport-ws|apollo ws://HOST:PORT/graphql/ ROOM
//
// It reads the room's history, sends as Anonymous, logs in as demo (on its socket),
// sends as demo, and subscribes to the room. Then it follows the test on stdin/stdout,
// one JSON document a line: it prints {"step": "subscribed"} and every notification
// ({"step": "message", "data": ...}); on the line "own" it sends a message of its own
// and prints {"step": "own-sent"}; it prints {"step": "done"} and exits after the
// message "the end".

import { createInterface } from "node:readline";

import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { createClient } from "graphql-ws";
import { SubscriptionClient } from "subscriptions-transport-ws";
import WebSocket from "ws";

import { fail, watchdog, withoutTypename } from "./common.mjs";

const HISTORY = "query History($room: String!) { history(chatroom: $room) { chatroom text sender } }";
const SEND = `mutation Send($room: String!, $text: String!) {
  sendChatMessage(chatroom: $room, text: $text) { ok }
}`;
const LOGIN = 'mutation Login { login(username: "demo", password: "demo") { ok } }';
const ME = "query Me { me { username } }";
const LISTEN = `subscription Listen($room: String!) {
  onNewChatMessage(chatroom: $room) { chatroom text sender }
}`;

function print(document) {
  process.stdout.write(`${JSON.stringify(document)}\n`);
}

/** Each client as {request(query, variables) -> Promise<result>, subscribe(query, variables, onNext), close()}. */
const clients = {
  "graphql-ws"(url) {
    // Not lazy: the login lives on the socket, which lazy mode closes between operations.
    const client = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0 });
    return {
      request: (query, variables) => client.iterate({ query, variables }).next().then((r) => r.value),
      subscribe: (query, variables, onNext) =>
        client.subscribe({ query, variables }, { next: onNext, error: fail, complete() {} }),
      close: () => client.dispose(),
    };
  },
  "subscriptions-transport-ws"(url) {
    const client = new SubscriptionClient(url, { reconnect: false }, WebSocket);
    const first = (query, variables) =>
      new Promise((resolve, reject) => {
        const subscription = client.request({ query, variables }).subscribe({
          next: (result) => {
            resolve(result);
            subscription.unsubscribe();
          },
          error: reject,
        });
      });
    return {
      request: first,
      subscribe: (query, variables, onNext) =>
        client.request({ query, variables }).subscribe({ next: onNext, error: fail }),
      close: () => client.close(),
    };
  },
  apollo(url) {
    const wsClient = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0 });
    const client = new ApolloClient({ link: new GraphQLWsLink(wsClient), cache: new InMemoryCache() });
    return {
      request: async (query, variables) => {
        const document = gql(query);
        const isMutation = query.trimStart().startsWith("mutation");
        const result = isMutation
          ? await client.mutate({ mutation: document, variables })
          : await client.query({ query: document, variables, fetchPolicy: "no-cache" });
        return { data: withoutTypename(result.data) };
      },
      subscribe: (query, variables, onNext) =>
        client
          .subscribe({ query: gql(query), variables, fetchPolicy: "no-cache" })
          .subscribe({ next: (result) => onNext({ data: withoutTypename(result.data) }), error: fail }),
      close: () => wsClient.dispose(),
    };
  },
};

function expectOk(result, field) {
  if (!result?.data?.[field]?.ok) throw new Error(`${field} failed: ${JSON.stringify(result)}`);
}

async function main() {
  const [kind, url, room] = process.argv.slice(2);
  if (!clients[kind] || !url || !room) fail(new Error("usage: node chat-tour.mjs CLIENT URL ROOM"));
  watchdog(60);
  const client = clients[kind](url);

  const history = await client.request(HISTORY, { room });
  print({ step: "history", data: history.data });
  expectOk(await client.request(SEND, { room, text: `anonymous from ${kind}` }), "sendChatMessage");
  expectOk(await client.request(LOGIN, {}), "login");
  print({ step: "me", data: (await client.request(ME, {})).data });
  expectOk(await client.request(SEND, { room, text: `demo from ${kind}` }), "sendChatMessage");

  client.subscribe(LISTEN, { room }, (result) => {
    print({ step: "message", data: result.data ?? null, errors: result.errors ?? null });
    if (result.data?.onNewChatMessage?.text === "the end") {
      print({ step: "done" });
      Promise.resolve(client.close()).finally(() => process.exit(0));
    }
  });
  print({ step: "subscribed" });

  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "own") {
      expectOk(await client.request(SEND, { room, text: `own from ${kind}` }), "sendChatMessage");
      print({ step: "own-sent" });
    }
  }
}

main().catch(fail);
