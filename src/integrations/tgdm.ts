import { z } from 'zod';
import { IntegrationError, permanentFailure, postJson, serviceUrl } from './http-client';

/**
 * TGDM, the recorder of Moth streams (our adapter contract; the real API is not public, so paths live
 * here and nowhere else):
 *   POST {TGDM_URL}/recordings {uri, deviceId, track, policy} -> 201 {id}
 *   POST {TGDM_URL}/recordings/{id}/stop -> 200 (404/409: already stopped)
 * An `Idempotency-Key` header names our recording, so a retried start does not record twice.
 */
export interface Tgdm {
  startRecording(r: {
    uri: string;
    deviceId: string;
    track: string;
    policy: 'AUTOMATIC' | 'MANUAL';
    key: string;
  }): Promise<{ id: string }>;
  /** Resolves when the recording is stopped, including when it already was. */
  stopRecording(id: string): Promise<'stopped' | 'already-stopped'>;
}

const started = z.object({ id: z.union([z.string().min(1), z.number()]).transform(String) });

export function createTgdm(baseUrl: string, timeoutMs: number): Tgdm {
  const url = serviceUrl(baseUrl);
  return {
    async startRecording(r) {
      const res = await postJson(
        url('recordings'),
        { uri: r.uri, deviceId: r.deviceId, track: r.track, policy: r.policy },
        timeoutMs,
        {
          'Idempotency-Key': r.key,
        },
      );
      if (res.status !== 200 && res.status !== 201) throw permanentFailure('TGDM start', res);
      const parsed = started.safeParse(res.body);
      if (!parsed.success)
        throw new IntegrationError('TGDM start: answer without a recording id', false, res.status);
      return parsed.data;
    },
    async stopRecording(id) {
      const res = await postJson(url(`recordings/${encodeURIComponent(id)}/stop`), {}, timeoutMs);
      if (res.status === 404 || res.status === 409) return 'already-stopped';
      if (res.status >= 200 && res.status < 300) return 'stopped';
      throw permanentFailure('TGDM stop', res);
    },
  };
}
