import type { RawData } from 'ws';

/** A received WebSocket frame as one Buffer, whatever form `ws` delivered it in. */
export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
