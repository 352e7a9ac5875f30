import { WebSocket } from 'ws';

/** Whether Moth keeps a session on this URL (it drops a refused one right after the handshake). */
export async function stays(url: string): Promise<boolean> {
  const ws = new WebSocket(url);
  ws.on('error', () => {});
  const closed = new Promise<boolean>((resolve) => ws.once('close', () => resolve(false)));
  const result = await Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(true), 500))]);
  ws.terminate();
  return result;
}

/** A Moth path with this key instead of its own (undefined: none). */
export function withKey(path: string, key: string | undefined): string {
  const url = new URL(path, 'ws://x');
  if (key === undefined) url.searchParams.delete('key');
  else url.searchParams.set('key', key);
  return `${url.pathname}${url.search}`;
}
