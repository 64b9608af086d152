// Talking to the server: JSON calls and server-sent-event streams, with errors turned into sentences.

/** An error the page shows in words; `status` is the HTTP status (0: no answer). */
export class ApiError extends Error {
  constructor(status, message, code, retryAfter) { super(message); this.status = status; this.code = code; this.retryAfter = retryAfter; }
}

function headers(apiKey) {
  const h = { 'Content-Type': 'application/json' };
  if (apiKey) h.Authorization = 'Bearer ' + apiKey;
  return h;
}

async function failure(response) {
  let message = '', code;
  try {
    const body = await response.json();
    message = body?.error?.message ?? '';
    code = body?.error?.code;
  } catch { /* not JSON */ }
  const retry = response.headers.get('Retry-After');
  return new ApiError(response.status, message || response.statusText, code, retry ? Number(retry) : undefined);
}

const statusOf = type => ({ invalid_request_error: 400, authentication_error: 401, rate_limit_error: 429 })[type] ?? 500;

export async function getJson(path, apiKey) {
  let response;
  try { response = await fetch(path, { headers: headers(apiKey) }); }
  catch (e) { throw new ApiError(0, e.message); }
  if (!response.ok) throw await failure(response);
  return response.json();
}

/**
 * POSTs `body` and yields the server-sent events of the answer as { event, data } (data parsed from JSON;
 * '[DONE]' ends the stream). Aborting `signal` stops it.
 */
export async function* stream(path, body, apiKey, signal) {
  let response;
  try { response = await fetch(path, { method: 'POST', headers: headers(apiKey), body: JSON.stringify(body), signal }); }
  catch (e) { if (e.name === 'AbortError') throw e; throw new ApiError(0, e.message); }
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      let event = 'message', data = '';
      for (const line of frame.split(/\r?\n/)) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
      }
      if (data === '[DONE]') return;
      if (!data) continue;
      const parsed = JSON.parse(data);
      // An error after the stream started arrives as a frame; its type says which status it would have had.
      if (parsed?.error) throw new ApiError(parsed.error.status ?? statusOf(parsed.error.type), parsed.error.message, parsed.error.code);
      yield { event, data: parsed };
    }
  }
}

/** The sentence shown for a failed request. */
export function describe(error, contextLength) {
  if (!(error instanceof ApiError)) return `Something went wrong in the page: ${error.message}`;
  const detail = error.message ? ` (${error.message})` : '';
  if (error.code === 'context_length_exceeded')
    return `This conversation is too long for the model's context of ${contextLength ?? '?'} tokens${detail}. Start a new chat, or edit an earlier message to branch off.`;
  switch (error.status) {
    case 0: return `Could not reach the server${detail}. Is kimi serve still running?`;
    case 400: return `The server refused the request as invalid (400)${detail}. Check the settings.`;
    case 401: return `The server needs a valid API key (401)${detail}. Enter it and try again.`;
    case 404: return `Not found (404)${detail}.`;
    case 413: return `The request is too large for the server (413)${detail}.`;
    case 429: return `The server is busy (429)${detail}.${error.retryAfter ? ` Try again in ${error.retryAfter} s.` : ' Try again in a moment.'}`;
    default: return `The server failed (${error.status})${detail}.`;
  }
}
