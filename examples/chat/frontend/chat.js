// The chat page: pick a room, read its history, send, see new messages live, log in.
// Everything goes over one WebSocket to /graphql/ (graphql-transport-ws).

import { GraphqlTransportWsClient } from "./graphql-transport-ws.js";

const HISTORY = `query History($chatroom: String!) {
  history(chatroom: $chatroom) { chatroom text sender }
}`;
const ME = "query Me { me { username } }";
const SEND = `mutation Send($chatroom: String!, $text: String!) {
  sendChatMessage(chatroom: $chatroom, text: $text) { ok }
}`;
const LOGIN = `mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) { ok }
}`;
const ON_NEW_MESSAGE = `subscription OnNewChatMessage($chatroom: String!) {
  onNewChatMessage(chatroom: $chatroom) { chatroom text sender }
}`;

// Asks the server to confirm this one subscription once it is registered: its first
// result is then {"data": null}. Other clients of the same server get no such result.
const CONFIRM = { "channels_graphql_typed.confirm": true };

const element = (id) => document.getElementById(id);
const messages = element("messages");

const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const client = new GraphqlTransportWsClient(`${scheme}//${location.host}/graphql/`, {
  onStatus: showStatus,
});

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
}

function messageKey(message) {
  return JSON.stringify([message.sender, message.text]);
}

function appendMessage(message, own = false) {
  const item = document.createElement("li");
  item.className = own ? "message own" : "message";
  const sender = document.createElement("span");
  sender.className = "sender";
  sender.textContent = message.sender;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  item.append(sender, text);
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
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
      const tail = data.history.slice(-buffered.length || data.history.length).map(messageKey);
      for (const message of buffered) {
        const index = tail.indexOf(messageKey(message));
        if (index >= 0) tail.splice(index, 1);
        else appendMessage(message);
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
    // The server does not notify the sending connection: show the message here.
    appendMessage({ chatroom: room, text, sender: username ?? "Anonymous" }, true);
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

joinRoom(decodeURIComponent(location.hash.slice(1)) || "lobby");
