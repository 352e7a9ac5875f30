import { z } from 'zod';
import { groupNameSchema } from './policy';

export const TRACK_TYPES = [
  'VIDEO',
  'AUDIO',
  'LIDAR',
  'CONTROL',
  'BATTERY',
  'SPEAKER',
  'TOPIC',
  'MAP',
  'ODOMETRY',
  'GPS',
  'TRAJECTORY',
] as const;
export type TrackType = (typeof TRACK_TYPES)[number];

export const DEVICE_STATUSES = ['DISCONNECTED', 'CONNECTED'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

/** Track names become part of Moth URIs, so they are kept to URL-safe characters. */
const trackName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only');

export const trackSchema = z.strictObject({ name: trackName, type: z.enum(TRACK_TYPES) });
export type Track = z.infer<typeof trackSchema>;

/**
 * Characters that change how a name reads without being seen: controls, format characters
 * (bidirectional overrides and isolates such as U+202E, zero-width spaces and joiners, the BOM) and
 * line or paragraph separators. A name with one could render as another device's on an operator's
 * screen. (Track and group names are ASCII letters, digits and ".", "_", "-" already.)
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

export const registrationSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(100)
    .refine(
      (s) => s.trim() === s && !INVISIBLE.test(s),
      'no leading/trailing spaces, control characters, bidirectional controls or zero-width characters',
    ),
  secretKey: z.string().min(1).max(1024),
  tracks: z
    .array(trackSchema)
    .max(64)
    .superRefine((tracks, ctx) => {
      const seen = new Set<string>();
      tracks.forEach((t, i) => {
        if (seen.has(t.name))
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate track name "${t.name}"` });
        seen.add(t.name);
      });
    }),
  actions: z
    .array(
      z
        .string()
        .max(100)
        .refine((s) => s.trim().length > 0, 'must be a non-empty string')
        .refine((s) => !INVISIBLE.test(s), 'no control, bidirectional or zero-width characters'),
    )
    .max(100)
    .refine((a) => new Set(a).size === a.length, 'actions must be unique'),
  /** The group it belongs to (its health-check policy and maintenance windows apply). */
  group: groupNameSchema.optional(),
});
export type Registration = z.infer<typeof registrationSchema>;

/**
 * The Moth path (path + query) a device publishes a Track on. Built from the device's public channel
 * name, never from its token, so a URI handed to clients, TGDM or Mantis carries no credential.
 */
export function trackEndpoint(publicChannel: string, track: string, role: 'pub' | 'sub' = 'pub'): string {
  const q = new URLSearchParams({ channel: 'instant', name: publicChannel, source: 'base', track });
  return `/pang/ws/${role}?${q.toString()}`;
}
