import { z } from 'zod';
import { MAX_LINK_P95_MS } from './policy';

/**
 * Runtime settings: typed keys with their validation and default. Stored one row per key that differs
 * from its default; read by every process when it needs them, so a change applies without a restart.
 */
export const SETTING_SCHEMAS = {
  'device.healthcheckIntervalSeconds': z.number().int().min(1).max(3600),
  'device.healthcheckMaxConsecutiveMisses': z.number().int().min(1).max(100),
  'device.massSilenceRatio': z.number().gt(0).max(1),
  'device.massSilenceMinDevices': z.number().int().min(1).max(10_000_000),
  'device.massSilenceMaxHeldRounds': z.number().int().min(0).max(100),
  'device.flapThreshold': z.number().int().min(1).max(1000),
  'device.flapWindowSeconds': z.number().int().min(5).max(86_400),
  'device.flapHoldSeconds': z.number().int().min(0).max(3600),
  'device.linkMaxP95Ms': z.number().int().min(1).max(MAX_LINK_P95_MS),
  'device.linkMaxMissShare': z.number().gt(0).max(1),
  'device.linkDegradedHoldSeconds': z.number().int().min(0).max(3600),
  'recording.automatic': z.boolean(),
  /** Registered devices at most (a registration past it: 409 DEVICE_LIMIT_REACHED). */
  'device.maxDevices': z.number().int().min(1).max(10_000_000),
  /** Webhooks at most (one past it: 409 WEBHOOK_LIMIT_REACHED). */
  'webhook.maxWebhooks': z.number().int().min(1).max(10_000),
} as const;

export type SettingKey = keyof typeof SETTING_SCHEMAS;
export type SettingValues = { [K in SettingKey]: z.infer<(typeof SETTING_SCHEMAS)[K]> };

export const SETTING_DEFAULTS: Readonly<SettingValues> = Object.freeze({
  'device.healthcheckIntervalSeconds': 5,
  'device.healthcheckMaxConsecutiveMisses': 3,
  'device.massSilenceRatio': 0.5,
  'device.massSilenceMinDevices': 10,
  'device.massSilenceMaxHeldRounds': 3,
  'device.flapThreshold': 3,
  'device.flapWindowSeconds': 600,
  'device.flapHoldSeconds': 60,
  'device.linkMaxP95Ms': 500,
  'device.linkMaxMissShare': 0.2,
  'device.linkDegradedHoldSeconds': 60,
  'recording.automatic': true,
  'device.maxDevices': 100_000,
  'webhook.maxWebhooks': 100,
});

export const SETTING_KEYS = Object.keys(SETTING_DEFAULTS) as SettingKey[];

/** The minimum length of a registration secret set through the API. */
export const SECRET_KEY_MIN_LENGTH = 16;

/** Merges stored rows over the defaults, ignoring rows that no longer validate. */
export function resolveSettings(stored: ReadonlyMap<string, unknown>): SettingValues {
  const values: Record<string, unknown> = { ...SETTING_DEFAULTS };
  for (const key of SETTING_KEYS) {
    const parsed = SETTING_SCHEMAS[key].safeParse(stored.get(key));
    if (parsed.success) values[key] = parsed.data;
  }
  return values as SettingValues;
}

/** The public, nested shape of `/server-settings`. The secret itself never appears. */
export function presentSettings(values: SettingValues, secretKeyConfigured: boolean) {
  return {
    device: {
      healthcheckIntervalSeconds: values['device.healthcheckIntervalSeconds'],
      healthcheckMaxConsecutiveMisses: values['device.healthcheckMaxConsecutiveMisses'],
      massSilenceRatio: values['device.massSilenceRatio'],
      massSilenceMinDevices: values['device.massSilenceMinDevices'],
      massSilenceMaxHeldRounds: values['device.massSilenceMaxHeldRounds'],
      flapThreshold: values['device.flapThreshold'],
      flapWindowSeconds: values['device.flapWindowSeconds'],
      flapHoldSeconds: values['device.flapHoldSeconds'],
      linkMaxP95Ms: values['device.linkMaxP95Ms'],
      linkMaxMissShare: values['device.linkMaxMissShare'],
      linkDegradedHoldSeconds: values['device.linkDegradedHoldSeconds'],
      maxDevices: values['device.maxDevices'],
      secretKeyConfigured,
    },
    recording: { automatic: values['recording.automatic'] },
    webhook: { maxWebhooks: values['webhook.maxWebhooks'] },
  };
}

const resettable = <T extends z.ZodType>(schema: T) => schema.nullable().optional();

/** JSON merge patch (RFC 7396) of the public shape: `null` resets a setting to its default. */
export const settingsPatchSchema = z.strictObject({
  device: z
    .strictObject({
      healthcheckIntervalSeconds: resettable(SETTING_SCHEMAS['device.healthcheckIntervalSeconds']),
      healthcheckMaxConsecutiveMisses: resettable(SETTING_SCHEMAS['device.healthcheckMaxConsecutiveMisses']),
      massSilenceRatio: resettable(SETTING_SCHEMAS['device.massSilenceRatio']),
      massSilenceMinDevices: resettable(SETTING_SCHEMAS['device.massSilenceMinDevices']),
      massSilenceMaxHeldRounds: resettable(SETTING_SCHEMAS['device.massSilenceMaxHeldRounds']),
      flapThreshold: resettable(SETTING_SCHEMAS['device.flapThreshold']),
      flapWindowSeconds: resettable(SETTING_SCHEMAS['device.flapWindowSeconds']),
      flapHoldSeconds: resettable(SETTING_SCHEMAS['device.flapHoldSeconds']),
      linkMaxP95Ms: resettable(SETTING_SCHEMAS['device.linkMaxP95Ms']),
      linkMaxMissShare: resettable(SETTING_SCHEMAS['device.linkMaxMissShare']),
      linkDegradedHoldSeconds: resettable(SETTING_SCHEMAS['device.linkDegradedHoldSeconds']),
      maxDevices: resettable(SETTING_SCHEMAS['device.maxDevices']),
      secretKey: z
        .string()
        .min(SECRET_KEY_MIN_LENGTH, `at least ${SECRET_KEY_MIN_LENGTH} characters`)
        .max(1024)
        .optional(),
      secretKeyConfigured: z.never('read-only').optional(),
    })
    .nullable()
    .optional(),
  recording: z
    .strictObject({ automatic: resettable(SETTING_SCHEMAS['recording.automatic']) })
    .nullable()
    .optional(),
  webhook: z
    .strictObject({ maxWebhooks: resettable(SETTING_SCHEMAS['webhook.maxWebhooks']) })
    .nullable()
    .optional(),
});
export type SettingsPatch = z.infer<typeof settingsPatchSchema>;

export interface SettingsChange {
  /** Keys to store; `null` means back to the default (the row is deleted). */
  readonly values: Partial<{ [K in SettingKey]: SettingValues[K] | null }>;
  readonly secretKey?: string;
}

/** Turns a validated merge patch into the per-key change it describes. */
export function planSettingsChange(patch: SettingsPatch): SettingsChange {
  const values: Record<string, unknown> = {};
  const section = (prefix: string, obj: Record<string, unknown> | null | undefined) => {
    if (obj === undefined) return;
    for (const key of SETTING_KEYS.filter((k) => k.startsWith(`${prefix}.`))) {
      const field = key.slice(prefix.length + 1);
      if (obj === null) values[key] = null;
      else if (field in obj && obj[field] !== undefined) values[key] = obj[field];
    }
  };
  section('device', patch.device);
  section('recording', patch.recording);
  section('webhook', patch.webhook);
  const secretKey = patch.device?.secretKey;
  return secretKey === undefined ? { values } : { values, secretKey };
}

/** The server's level of every device's policy. */
export const serverPolicy = (values: SettingValues) => ({
  maxConsecutiveMisses: values['device.healthcheckMaxConsecutiveMisses'],
  intervalMultiple: 1,
  linkMaxP95Ms: values['device.linkMaxP95Ms'],
  linkMaxMissShare: values['device.linkMaxMissShare'],
});
