/** A Server-Sent Events stream read over real HTTP: each event's id and parsed data, as they come. */
export interface SseReader {
  readonly events: { id: number; data: Record<string, unknown> }[];
  readonly status: number;
  /** Resolves when the server ended or cut the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

export async function readSse(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const events: SseReader['events'] = [];
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id !== undefined && data !== undefined)
            events.push({ id: Number(id), data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    } catch {
      // Closed by us, or cut by the server: what was read is kept.
    }
  })();
  return { events, status: res.status, ended, close: () => abort.abort() };
}
