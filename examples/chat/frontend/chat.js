// The chat page: pick a room, read its history, send, see new messages live, edit and
// delete your own messages (everyone sees the changes live), log in and out.
// Everything goes over one WebSocket to /graphql/ (graphql-transport-ws); when the
// first WebSocket cannot open, or with ?transport=sse in the URL, over HTTP to the same
// /graphql/ instead (POSTs, and Server-Sent Events for the subscriptions).

import { GraphqlSseClient } from "./graphql-sse.js";
import { GraphqlTransportWsClient } from "./graphql-transport-ws.js";

const HISTORY = `query History($chatroom: String!) {
  history(chatroom: $chatroom) { id chatroom text sender }
}`;
const ME = "query Me { me { username } }";
const SEND = `mutation Send($chatroom: String!, $text: String!) {
  sendChatMessage(chatroom: $chatroom, text: $text) { ok id }
}`;
const EDIT = `mutation Edit($id: ID!, $text: String!) {
  editChatMessage(id: $id, text: $text) { ok }
}`;
const DELETE = `mutation Delete($id: ID!) { deleteChatMessage(id: $id) { ok } }`;
const LOGOUT = "mutation Logout { logout { ok } }";
const LOGIN = `mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) { ok }
}`;
const ON_NEW_MESSAGE = `subscription OnNewChatMessage($chatroom: String!) {
  onNewChatMessage(chatroom: $chatroom) { id chatroom text sender }
}`;
// The model subscription: edits and deletions in every room (this page keeps its room's).
const ON_CHANGE = `subscription OnChange {
  onChatMessageChanged(actions: [UPDATED, DELETED]) { action node { id chatroom text sender } }
}`;

// Asks the server to confirm this one subscription once it is registered: its first
// result is then {"data": null}. Other clients of the same server get no such result.
const CONFIRM = { "channels_graphql_typed.confirm": true };

const element = (id) => document.getElementById(id);
const messages = element("messages");

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const askedForSse = new URLSearchParams(location.search).get("transport") === "sse";
let client = null;
let everConnected = false;

function useTransport(kind) {
  client?.close();
  element("transport").textContent = kind === "sse" ? "HTTP and Server-Sent Events" : "WebSocket";
  element("transport").dataset.transport = kind;
  client = kind === "sse"
    ? new GraphqlSseClient(`${location.origin}/graphql/`, { onStatus: showStatus })
    : new GraphqlTransportWsClient(`${scheme}//${location.host}/graphql/`, {
      onStatus: showStatusOrFallBack,
    });
  subscribeToChanges();
  joinRoom(room ?? (decodeURIComponent(location.hash.slice(1)) || "lobby"));
}

// A WebSocket that closes before it ever connected (a proxy that refuses upgrades, a
// network that blocks them): the page goes on over HTTP.
function showStatusOrFallBack(status, retryIn) {
  if (status === "disconnected" && !everConnected) {
    useTransport("sse");
    return;
  }
  showStatus(status, retryIn);
}

let username = null; // null: anonymous
let room = null;
let roomGeneration = 0; // results of an older room are ignored
let stopSubscription = null;

function showStatus(status, retryIn) {
  const label = {
    connecting: "connecting…",
    connected: "connected",
    disconnected: `disconnected, retrying in ${Math.round(retryIn / 1000)} s`,
  }[status];
  element("status").textContent = label;
  element("status").dataset.status = status;
  if (status === "connected") everConnected = true;
  // A new connection starts anonymous: a login over the WebSocket lasts as long as it.
  if (status === "connected") refreshMe();
}

function showError(error) {
  element("error").textContent = error ? String(error.message ?? error) : "";
}

async function refreshMe() {
  try {
    const data = await client.request(ME, {});
    username = data.me ? data.me.username : null;
  } catch (error) {
    showError(error);
  }
  element("me").textContent = username ?? "Anonymous";
  element("login-form").hidden = username !== null;
  element("logout").hidden = username === null;
  for (const item of messages.children) showControls(item);
}

// Edit and Delete are shown on the messages of the logged-in user (the server checks).
function showControls(item) {
  item.querySelector(".controls").hidden =
    username === null || item.querySelector(".sender").textContent !== username;
}

function controlButton(label, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = label.toLowerCase();
  button.textContent = label;
  button.addEventListener("click", onClick);
  return button;
}

function appendMessage(message, own = false) {
  // Over HTTP the server notifies the sender too (each request is a connection of its
  // own), maybe before the mutation's answer: a message is shown once.
  const shown = messageItem(message.id);
  if (shown) {
    if (own) shown.classList.add("own");
    return;
  }
  const item = document.createElement("li");
  item.className = own ? "message own" : "message";
  item.dataset.id = message.id;
  const sender = document.createElement("span");
  sender.className = "sender";
  sender.textContent = message.sender;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  const controls = document.createElement("span");
  controls.className = "controls";
  controls.append(
    controlButton("Edit", () => editMessage(item)),
    controlButton("Delete", () => deleteMessage(item)),
  );
  item.append(sender, text, controls);
  showControls(item);
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

function messageItem(id) {
  return messages.querySelector(`.message[data-id="${CSS.escape(String(id))}"]`);
}

async function editMessage(item) {
  const current = item.querySelector(".text").textContent;
  const text = prompt("Edit your message", current)?.trim();
  if (!text || text === current) return;
  showError(null);
  try {
    const data = await client.request(EDIT, { id: item.dataset.id, text });
    if (!data.editChatMessage.ok) throw new Error("The server refused the change");
    item.querySelector(".text").textContent = text; // the notification says so too
  } catch (error) {
    showError(error);
  }
}

async function deleteMessage(item) {
  showError(null);
  try {
    const data = await client.request(DELETE, { id: item.dataset.id });
    if (!data.deleteChatMessage.ok) throw new Error("The server refused to delete it");
    item.remove();
  } catch (error) {
    showError(error);
  }
}

function messageChanged(change) {
  const { action, node } = change;
  if (node.chatroom !== room) return;
  const item = messageItem(node.id);
  if (!item) return;
  if (action === "DELETED") item.remove();
  else item.querySelector(".text").textContent = node.text;
}

function joinRoom(name) {
  stopSubscription?.();
  room = name;
  const generation = ++roomGeneration;
  element("room").value = name;
  element("room-title").textContent = name;
  messages.replaceChildren();
  messages.dataset.state = "loading";
  let buffered = null; // live messages that arrive while the history loads

  async function loadHistory() {
    buffered = [];
    try {
      const data = await client.request(HISTORY, { chatroom: name });
      if (generation !== roomGeneration) return;
      messages.replaceChildren();
      for (const message of data.history) appendMessage(message);
      // A message sent while the history was read may be in both: show it once.
      const shown = new Set(data.history.map((message) => message.id));
      for (const message of buffered) {
        if (!shown.has(message.id)) appendMessage(message);
      }
      messages.dataset.state = "ready";
    } catch (error) {
      showError(error);
    } finally {
      buffered = null;
    }
  }

  stopSubscription = client.subscribe(ON_NEW_MESSAGE, { chatroom: name }, {
    next(payload) {
      if (generation !== roomGeneration) return;
      if (payload.errors) {
        showError(payload.errors[0]);
      } else if (payload.data === null) {
        // The server's confirmation: the subscription is registered, so no message sent
        // from now on is missed. Read the history now (again after a reconnection).
        loadHistory();
      } else if (buffered) {
        buffered.push(payload.data.onNewChatMessage);
      } else {
        appendMessage(payload.data.onNewChatMessage);
      }
    },
    error: showError,
    complete() {},
  }, CONFIRM);
}

element("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = element("room").value.trim();
  if (name) location.hash = encodeURIComponent(name);
});

window.addEventListener("hashchange", () => {
  const name = decodeURIComponent(location.hash.slice(1)) || "lobby";
  if (name !== room) joinRoom(name);
});

element("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = element("text");
  const text = input.value.trim();
  if (!text) return;
  showError(null);
  try {
    const data = await client.request(SEND, { chatroom: room, text });
    if (!data.sendChatMessage.ok) throw new Error("The server refused the message");
    input.value = "";
    // The server does not notify the sending WebSocket: show the message here.
    const sent = { id: data.sendChatMessage.id, chatroom: room, text };
    appendMessage({ ...sent, sender: username ?? "Anonymous" }, true);
  } catch (error) {
    showError(error);
  }
});

element("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  try {
    const data = await client.request(LOGIN, {
      username: element("username").value,
      password: element("password").value,
    });
    if (!data.login.ok) throw new Error("Wrong username or password");
    element("password").value = "";
    await refreshMe();
  } catch (error) {
    showError(error);
  }
});

element("logout").addEventListener("click", async () => {
  showError(null);
  try {
    await client.request(LOGOUT, {});
  } catch (error) {
    showError(error);
  }
  await refreshMe();
});

// Once per client: the client subscribes again after a reconnection.
function subscribeToChanges() {
  client.subscribe(ON_CHANGE, {}, {
    next(payload) {
      if (payload.errors) showError(payload.errors[0]);
      else messageChanged(payload.data.onChatMessageChanged);
    },
    error: showError,
    complete() {},
  });
}

useTransport(askedForSse ? "sse" : "ws");
