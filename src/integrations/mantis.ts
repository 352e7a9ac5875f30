import { z } from 'zod';
import { IntegrationError, permanentFailure, postJson, serviceUrl } from './http-client';

/**
 * Mantis, the AI analysis pipeline server (our adapter contract):
 *   POST {MANTIS_URL}/streams {inputUri, deviceId, track, pipeline} -> 201 {id, outputUri}
 *   POST {MANTIS_URL}/streams/{id}/stop -> 200 (404/409: already stopped)
 */
export interface Mantis {
  startStream(s: {
    inputUri: string;
    deviceId: string;
    track: string;
    pipeline: string;
    key: string;
  }): Promise<{ id: string; outputUri: string | null }>;
  stopStream(id: string): Promise<'stopped' | 'already-stopped'>;
}

const started = z.object({
  id: z.union([z.string().min(1), z.number()]).transform(String),
  outputUri: z.string().nullable().optional(),
});

export function createMantis(baseUrl: string, timeoutMs: number): Mantis {
  const url = serviceUrl(baseUrl);
  return {
    async startStream(s) {
      const res = await postJson(
        url('streams'),
        { inputUri: s.inputUri, deviceId: s.deviceId, track: s.track, pipeline: s.pipeline },
        timeoutMs,
        { 'Idempotency-Key': s.key },
      );
      if (res.status !== 200 && res.status !== 201) throw permanentFailure('Mantis start', res);
      const parsed = started.safeParse(res.body);
      if (!parsed.success)
        throw new IntegrationError('Mantis start: answer without a stream id', false, res.status);
      return { id: parsed.data.id, outputUri: parsed.data.outputUri ?? null };
    },
    async stopStream(id) {
      const res = await postJson(url(`streams/${encodeURIComponent(id)}/stop`), {}, timeoutMs);
      if (res.status === 404 || res.status === 409) return 'already-stopped';
      if (res.status >= 200 && res.status < 300) return 'stopped';
      throw permanentFailure('Mantis stop', res);
    },
  };
}
