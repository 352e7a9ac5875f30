/** One Server-Sent Events message: its `id` and its `data` (lines joined), comments and retries left out. */
export interface SseMessage {
  readonly id: string | undefined;
  readonly data: string;
}

/**
 * Reads a `text/event-stream` body message by message, as its bytes come (a fetch body in Node.js or
 * a browser). Ends when the body does; a message cut off by the end is dropped, as EventSource does.
 */
export async function* sseMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let data: string[] = [];
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let start = 0;
    const eol = /\r\n|\r|\n/g;
    for (let m = eol.exec(buffer); m; m = eol.exec(buffer)) {
      // A lone CR at the end may be the first half of a CRLF still on its way.
      if (m[0] === '\r' && eol.lastIndex === buffer.length) break;
      const line = buffer.slice(start, m.index);
      start = eol.lastIndex;
      if (line === '') {
        if (data.length > 0) yield { id, data: data.join('\n') };
        data = [];
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
    buffer = buffer.slice(start);
  }
}
