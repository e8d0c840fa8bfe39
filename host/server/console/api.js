// The console's client of the HTTP API: every call carries the bearer
// token of the session, every refusal becomes an ApiError with the
// server's code and message, and the analytics stream is read from a
// fetch body (EventSource cannot send an Authorization header).

/** Where the token of this tab is kept: sessionStorage dies with the tab,
 * so a token pasted on a shared machine does not outlive it. */
const TOKEN_KEY = 'bazaar.console.token';

/** Longest a call may take before the console gives up on it: the API
 * answers in milliseconds, and a page must not hang on a lost request. */
const REQUEST_TIMEOUT_MS = 15000;

/** Longest event the stream reader buffers: a headline is a few hundred
 * bytes; anything larger means the stream is not what the console expects,
 * and an unbounded buffer would grow with it. */
const STREAM_EVENT_BYTES_MAX = 1 << 20;

/** A refusal of the API: the HTTP status, and the error body's code,
 * message and offending field. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }
}

/** The token of this tab, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Remembers (or, with null, forgets) the token of this tab. */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** JSON.parse that keeps integers beyond 2^53 exact as BigInt (sums of
 * minor units may exceed what a double holds); every other value is left
 * as JSON.parse makes it. */
export function parseJson(text) {
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

/** A signal that aborts with `signal` or after the request timeout. */
function deadline(signal) {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}

/** The ApiError of a refused response. */
async function refusal(response) {
  const text = await response.text();
  let error = null;
  try {
    error = parseJson(text).error;
  } catch {
    // Not JSON: a proxy's page, for instance; the status says enough.
  }
  if (error && typeof error.message === 'string') {
    return new ApiError(response.status, error.code ?? 'error', error.message, error.field);
  }
  return new ApiError(response.status, 'http_' + response.status, `the server answered ${response.status} ${response.statusText}`);
}

/** The headers of a call with `tokenOverride` or the session's token. */
function headers(tokenOverride, extra) {
  const result = { Accept: 'application/json', ...extra };
  const bearer = tokenOverride ?? token();
  if (bearer) result.Authorization = `Bearer ${bearer}`;
  return result;
}

/**
 * Calls the API: `method` on `path` (under the same origin) with an
 * optional JSON `body`. Resolves to the parsed JSON (null for an empty
 * answer); rejects with an ApiError for any refusal.
 */
export async function call(method, path, body, options = {}) {
  const init = {
    method,
    headers: headers(options.token, body === undefined ? {} : { 'Content-Type': 'application/json' }),
    signal: deadline(options.signal),
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new ApiError(0, 'unreachable', `the node did not answer (${error.message})`);
  }
  if (!response.ok) throw await refusal(response);
  const text = await response.text();
  return text ? parseJson(text) : null;
}

/** `GET path`. */
export const get = (path, options) => call('GET', path, undefined, options);

/** Encodes one path segment. */
export const seg = (text) => encodeURIComponent(text);

/**
 * Reads the server-sent events of `path` until the stream ends or
 * `signal` aborts, calling `onEvent(name, data)` for each event (data
 * parsed as JSON when it is JSON). Rejects with an ApiError when the
 * stream is refused.
 */
export async function stream(path, onEvent, signal) {
  let response;
  try {
    response = await fetch(path, { headers: headers(null, { Accept: 'text/event-stream' }), signal });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, 'unreachable', `the node did not answer (${error.message})`);
  }
  if (!response.ok) throw await refusal(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block, onEvent);
    }
    if (buffer.length > STREAM_EVENT_BYTES_MAX) {
      await reader.cancel();
      throw new ApiError(0, 'stream_too_large', `an event of the stream is over ${STREAM_EVENT_BYTES_MAX} bytes`);
    }
  }
}

/** Parses one event block (`event:` and `data:` lines) and hands it on. */
function dispatch(block, onEvent) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return;
  const text = data.join('\n');
  let parsed = text;
  try {
    parsed = parseJson(text);
  } catch {
    // Plain text data is handed on as it is.
  }
  onEvent(name, parsed);
}

/** The first-party analytics plugin the dashboard reads. */
export const ANALYTICS_PLUGIN = 'analytics-live';

/**
 * Asks `store`'s analytics plugin the query `name` with `params` (sent as
 * the query string) and resolves to its answer.
 */
export async function analytics(store, name, params = {}, options = {}) {
  const query = new URLSearchParams(params).toString();
  const path = `/v1/stores/${seg(store)}/analytics/${seg(ANALYTICS_PLUGIN)}/${seg(name)}${query ? '?' + query : ''}`;
  const answer = await get(path, options);
  // The answer itself, or the answer wrapped with what was asked.
  return answer && typeof answer.answer === 'object' && answer.answer !== null ? answer.answer : answer;
}

/** The path of `store`'s analytics stream. */
export function analyticsStreamPath(store) {
  return `/v1/stores/${seg(store)}/analytics/${seg(ANALYTICS_PLUGIN)}/stream`;
}

/**
 * Runs `task` now and then every `periodMs` after each run finishes,
 * until `signal` aborts. A failing run does not stop the next one; its
 * error goes to `onError`.
 */
export function every(periodMs, signal, task, onError) {
  let timer = 0;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await task();
    } catch (error) {
      if (!signal.aborted && onError) onError(error);
    }
    if (!signal.aborted) timer = setTimeout(tick, periodMs);
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  tick();
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
