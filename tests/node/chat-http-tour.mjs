// The README's tour of the chat example over HTTP, by one standard client with its
// defaults (no Origin header, no confirmation asked for) and a fetch that keeps cookies.
// Usage: node chat-http-tour.mjs graphql-sse|graphql-sse-single|graphql-http|apollo-http http://HOST:PORT/graphql/ ROOM [http://OTHER:PORT/graphql/]
//
// graphql-sse: every operation through graphql-sse's client (distinct connections mode:
// one event stream per operation). graphql-sse-single: the same in its single connection
// mode (one stream for every operation; with the second URL, the operations are posted
// to that other process), but for the login: a plain POST, then a new stream. graphql-http: queries and mutations through
// graphql-http's client, the subscription through graphql-sse's. apollo-http: Apollo
// Client 4 over its HttpLink (the subscription over Apollo's multipart protocol).
//
// It reads the room's history, sends as Anonymous, logs in as demo (the session cookie),
// sends as demo, and subscribes to the room. Then it follows the test on stdin/stdout,
// one JSON document a line: it prints {"step": "subscribed"} and every notification
// ({"step": "message", "data": ...}); on the line "own" it sends a message of its own
// and prints {"step": "own-sent"}; after the message "the end" it prints
// {"step": "done", "ignored": [...]} and exits.
//
// Over HTTP each request is a connection of its own, so the server notifies the
// subscription of the messages that this client's other requests sent: the client knows
// them by the ids that sendChatMessage returned, and ignores them (their texts are in
// "ignored"), holding the notifications that come while a message is being sent.

import { createInterface } from "node:readline";

import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { createClient as createHttpClient } from "graphql-http";
import { createClient as createSseClient } from "graphql-sse";

import { fail, watchdog, withoutTypename } from "./common.mjs";

const HISTORY = "query History($room: String!) { history(chatroom: $room) { chatroom text sender } }";
const SEND = `mutation Send($room: String!, $text: String!) {
  sendChatMessage(chatroom: $room, text: $text) { ok id }
}`;
const LOGIN = 'mutation Login { login(username: "demo", password: "demo") { ok } }';
const ME = "query Me { me { username } }";
const LISTEN = `subscription Listen($room: String!) {
  onNewChatMessage(chatroom: $room) { id chatroom text sender }
}`;

function print(document) {
  process.stdout.write(`${JSON.stringify(document)}\n`);
}

/** The global fetch with a cookie jar: what a browser does with the session cookie. */
function fetchWithCookies() {
  const jar = new Map();
  return async (input, init = {}) => {
    const headers = new Headers(init.headers);
    if (jar.size) headers.set("cookie", [...jar].map(([name, value]) => `${name}=${value}`).join("; "));
    const response = await fetch(input, { ...init, headers });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const separator = pair.indexOf("=");
      const name = pair.slice(0, separator).trim();
      const value = pair.slice(separator + 1).trim();
      const expired = attributes.some((attribute) => /^\s*max-age\s*=\s*0\s*$/i.test(attribute));
      if (expired || value === "" || value === '""') jar.delete(name);
      else jar.set(name, value);
    }
    return response;
  };
}

/** The first result of a graphql-sse or graphql-http client's operation. */
function first(client, query, variables) {
  return new Promise((resolve, reject) => {
    let result;
    client.subscribe(
      { query, variables },
      {
        next: (value) => {
          result ??= value;
        },
        error: reject,
        complete: () => resolve(result),
      },
    );
  });
}

/** Each client as {request(query, variables) -> Promise<result>, subscribe(query, variables, onNext), close()}. */
const clients = {
  "graphql-sse"(url, fetchFn) {
    const client = createSseClient({ url, fetchFn, retryAttempts: 0 });
    return {
      request: (query, variables) => first(client, query, variables),
      subscribe: (query, variables, onNext) =>
        client.subscribe({ query, variables }, { next: onNext, error: fail, complete() {} }),
      close: () => client.dispose(),
    };
  },
  "graphql-sse-single"(url, fetchFn, otherUrl) {
    // The stream (PUT, GET) on the first process; with a second URL, the operations
    // (POST) and their stops (DELETE) go to the other process, which forwards them.
    const routed = (input, init = {}) =>
      otherUrl && ["POST", "DELETE"].includes(init.method)
        ? fetchFn(String(input).replace(url, otherUrl), init)
        : fetchFn(input, init);
    const connect = () => createSseClient({ url, fetchFn: routed, singleConnection: true, retryAttempts: 0 });
    let client = connect();
    return {
      request: (query, variables) => first(client, query, variables),
      // An operation of the stream runs in the context of the request that reserved it,
      // whose response is long gone: a login there sets no cookie. So the login is a
      // plain POST, and since a stream is bound to who reserved it, a new stream follows.
      login: async (query) => {
        const response = await fetchFn(url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify({ query }),
        });
        client.dispose();
        client = connect();
        return response.json();
      },
      subscribe: (query, variables, onNext) =>
        client.subscribe({ query, variables }, { next: onNext, error: fail, complete() {} }),
      close: () => client.dispose(),
    };
  },
  "graphql-http"(url, fetchFn) {
    const client = createHttpClient({ url, fetchFn });
    const streams = createSseClient({ url, fetchFn, retryAttempts: 0 });
    return {
      request: (query, variables) => first(client, query, variables),
      subscribe: (query, variables, onNext) =>
        streams.subscribe({ query, variables }, { next: onNext, error: fail, complete() {} }),
      close: () => {
        client.dispose();
        streams.dispose();
      },
    };
  },
  "apollo-http"(url, fetchFn) {
    const client = new ApolloClient({
      link: new HttpLink({ uri: url, fetch: fetchFn }),
      cache: new InMemoryCache(),
    });
    let subscription;
    return {
      request: async (query, variables) => {
        const document = gql(query);
        const isMutation = query.trimStart().startsWith("mutation");
        const result = isMutation
          ? await client.mutate({ mutation: document, variables })
          : await client.query({ query: document, variables, fetchPolicy: "no-cache" });
        return { data: withoutTypename(result.data) };
      },
      subscribe: (query, variables, onNext) => {
        subscription = client
          .subscribe({ query: gql(query), variables, fetchPolicy: "no-cache" })
          .subscribe({
            next: (result) =>
              result.error ? fail(result.error) : onNext({ data: withoutTypename(result.data) }),
            error: fail,
          });
      },
      close: () => subscription?.unsubscribe(),
    };
  },
};

function expectOk(result, field) {
  if (!result?.data?.[field]?.ok) throw new Error(`${field} failed: ${JSON.stringify(result)}`);
  return result.data[field];
}

async function main() {
  const [kind, url, room, otherUrl] = process.argv.slice(2);
  if (!clients[kind] || !url || !room) fail(new Error("usage: node chat-http-tour.mjs CLIENT URL ROOM [URL]"));
  watchdog(60);
  const client = clients[kind](url, fetchWithCookies(), otherUrl);
  const sent = new Set();
  const ignored = [];
  // The notification of a message may come before the mutation's answer (its id): while
  // a message is being sent, the notifications wait.
  let sending = 0;
  const held = [];
  const send = async (text) => {
    sending += 1;
    try {
      const { id } = expectOk(await client.request(SEND, { room, text }), "sendChatMessage");
      sent.add(id);
    } finally {
      sending -= 1;
      if (!sending) for (const result of held.splice(0)) notice(result);
    }
  };
  const notice = (result) => {
    const message = result.data?.onNewChatMessage;
    if (message && sent.has(message.id)) {
      ignored.push(message.text);
      return;
    }
    print({ step: "message", data: result.data ?? null, errors: result.errors ?? null });
    if (message?.text === "the end") {
      print({ step: "done", ignored });
      Promise.resolve(client.close()).finally(() => process.exit(0));
    }
  };

  const history = await client.request(HISTORY, { room });
  print({ step: "history", data: history.data });
  await send(`anonymous from ${kind}`);
  expectOk(await (client.login ? client.login(LOGIN) : client.request(LOGIN, {})), "login");
  print({ step: "me", data: (await client.request(ME, {})).data });
  await send(`demo from ${kind}`);

  client.subscribe(LISTEN, { room }, (result) => (sending ? held.push(result) : notice(result)));
  print({ step: "subscribed" });

  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "own") {
      await send(`own from ${kind}`);
      print({ step: "own-sent" });
    }
  }
}

main().catch(fail);
