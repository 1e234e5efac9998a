// GraphQL over plain HTTP for the chat page, when it cannot open a WebSocket (a proxy
// that strips upgrades) or is asked not to (`?transport=sse`), written for the page with
// the same interface as its WebSocket client:
// - queries and mutations are POSTs (https://graphql.github.io/graphql-over-http/draft/);
// - each subscription is an EventSource: a GET of its own, in graphql-sse's distinct
//   connections mode (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md),
//   `next` events then `complete`. The browser reopens a stream that breaks, which
//   subscribes again, so the page reads the history again at the new confirmation.
// The session cookie goes with every request (same origin).

import { GraphqlError } from "./graphql-transport-ws.js";

export class GraphqlSseClient {
  /**
   * @param {string} url - http:// or https:// URL of the GraphQL endpoint
   * @param {{onStatus?: (status: string, retryIn?: number) => void}} options
   */
  constructor(url, { onStatus = () => {} } = {}) {
    this.url = url;
    this.onStatus = onStatus;
    this.streams = new Set();
    this.status = null;
    // Nothing to connect: the first request or stream says whether the server answers.
    queueMicrotask(() => this.setStatus("connected"));
  }

  setStatus(status, retryIn) {
    if (status === this.status && status === "connected") return;
    this.status = status;
    this.onStatus(status, retryIn);
  }

  /**
   * Start a subscription; `sink.next` gets every result payload ({data, errors}).
   * `extensions` go with the operation (the server's confirmation is asked for there).
   * @returns {() => void} a function that stops the subscription
   */
  subscribe(query, variables, sink, extensions = undefined) {
    const parameters = new URLSearchParams({ query, variables: JSON.stringify(variables) });
    if (extensions) parameters.set("extensions", JSON.stringify(extensions));
    const source = new EventSource(`${this.url}?${parameters}`);
    this.streams.add(source);
    const stop = () => {
      this.streams.delete(source);
      source.close();
    };
    source.addEventListener("open", () => this.setStatus("connected"));
    source.addEventListener("next", (event) => sink.next(JSON.parse(event.data)));
    source.addEventListener("complete", () => {
      stop();
      sink.complete();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not an event stream: the server said why in a JSON body, which an
        // EventSource cannot read): report it once, do not retry.
        stop();
        sink.error(new Error("The server refused the subscription"));
      } else {
        this.setStatus("disconnected", 3000); // the browser reopens it
      }
    });
    return stop;
  }

  /** Run a query or mutation; resolves to its `data`, rejects with its errors. */
  async request(query, variables) {
    let response;
    try {
      response = await fetch(this.url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/graphql-response+json, application/json",
        },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      this.setStatus("disconnected", 0);
      throw new Error(`The request failed: ${error.message}`);
    }
    this.setStatus("connected");
    const type = response.headers.get("Content-Type") ?? "";
    if (!type.includes("json")) throw new Error(`The server answered ${response.status}`);
    const result = await response.json();
    if (result.errors?.length) throw new GraphqlError(result.errors);
    return result.data ?? null;
  }

  /** Stop every subscription. */
  close() {
    for (const source of this.streams) source.close();
    this.streams.clear();
  }
}
