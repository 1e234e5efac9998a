// GraphiQL for the chat: queries and mutations go over HTTP (POST /graphql/, with the
// session cookie), subscriptions over the WebSocket through the graphql-ws client.
// `?query=...` (and `&variables=...`) in the URL open GraphiQL with that operation.
/* global React, ReactDOM, GraphiQL, graphqlWs */

const DEFAULT_QUERY = `# The chat's GraphiQL: run an operation with the ▶ button.
# Queries and mutations go over HTTP, subscriptions over
# the WebSocket. A subscription shows nothing until a
# message comes: send from another tab (or the chat page
# at /) to see messages arrive.

query History {
  history(chatroom: "lobby") { chatroom text sender }
}

mutation Send {
  sendChatMessage(chatroom: "lobby", text: "Hello from GraphiQL") { ok }
}

mutation Login {
  login(username: "demo", password: "demo") { ok }
}

query Me {
  me { username }
}

subscription Listen {
  onNewChatMessage(chatroom: "lobby") { chatroom text sender }
}
`;

const container = document.getElementById("graphiql");

if (typeof GraphiQL === "undefined" || typeof graphqlWs === "undefined") {
  container.className = "missing";
  container.textContent =
    "GraphiQL's files are missing: run `npm install` in examples/chat, then reload.";
} else {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const fetcher = GraphiQL.createFetcher({
    url: "/graphql/",
    wsClient: graphqlWs.createClient({ url: `${scheme}//${location.host}/graphql/` }),
  });
  const parameters = new URLSearchParams(location.search);
  ReactDOM.createRoot(container).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      query: parameters.get("query") ?? undefined,
      variables: parameters.get("variables") ?? undefined,
      defaultEditorToolsVisibility: false,
    }),
  );
}
