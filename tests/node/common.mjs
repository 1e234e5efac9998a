// Shared by the client scripts: the operations every client runs, and how a script
// reports (one JSON document on stdout) or fails (a message on stderr, exit code 1).

export const QUERY = "{ hello }";
export const MUTATION = 'mutation { echo(text: "hi") }';
export const SUBSCRIPTION = "subscription { count(to: 3) }";

/** The base URL (ws://host:port) given as the only argument. */
export function baseUrl() {
  const url = process.argv[2];
  if (!url) {
    fail(new Error(`usage: node ${process.argv[1]} ws://host:port`));
  }
  return url.replace(/\/+$/, "");
}

/** Fail the whole script if it has not finished in time (the caller has its own limit). */
export function watchdog(seconds) {
  setTimeout(() => fail(new Error(`timed out after ${seconds} s`)), seconds * 1000).unref();
}

/** Print the report, then exit once stdout is flushed (clients may keep timers alive). */
export function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

export function fail(error) {
  const text = error instanceof Error ? error.stack || error.message : JSON.stringify(error);
  process.stderr.write(`${text}\n`, () => process.exit(1));
}

/** A plain-object view of a CloseEvent (or of any other error a client reports). */
export function describeError(error) {
  if (error && typeof error === "object" && "code" in error && "reason" in error) {
    return { code: error.code, reason: error.reason };
  }
  if (error instanceof Error) {
    return { message: error.message };
  }
  return error;
}

/**
 * The first `count` results of `payload` on a graphql-sse `client` (all of them if it
 * completes first); `onFirst` runs once the first result is in.
 */
export function collect(client, payload, count, onFirst) {
  return new Promise((resolve, reject) => {
    const results = [];
    const dispose = client.subscribe(payload, {
      next(result) {
        results.push(result);
        if (results.length === 1 && onFirst) onFirst().catch(reject);
        if (results.length === count) {
          dispose();
          resolve(results);
        }
      },
      error: reject,
      complete: () => resolve(results),
    });
  });
}

/** The value without Apollo's `__typename` fields (its cache adds them to every
 * selection), for comparing results with what the server sent. */
export function withoutTypename(value) {
  if (Array.isArray(value)) return value.map(withoutTypename);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => key !== "__typename")
        .map(([key, item]) => [key, withoutTypename(item)]),
    );
  }
  return value;
}
