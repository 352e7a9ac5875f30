import { describe, expect, it } from 'vitest';
import { planSettingsChange, resolveSettings, settingsPatchSchema } from '../../src/domain/settings';

describe('settings merge patch', () => {
  it('maps nested keys to settings, null to a reset, absent keys to nothing', () => {
    const patch = settingsPatchSchema.parse({
      device: { healthcheckIntervalSeconds: 9, healthcheckMaxConsecutiveMisses: null },
    });
    expect(planSettingsChange(patch)).toEqual({
      values: { 'device.healthcheckIntervalSeconds': 9, 'device.healthcheckMaxConsecutiveMisses': null },
    });
  });
  it('a null section resets every key in it', () => {
    expect(planSettingsChange(settingsPatchSchema.parse({ recording: null }))).toEqual({
      values: { 'recording.automatic': null },
    });
  });
  it('carries the new secret apart from the settings', () => {
    expect(planSettingsChange(settingsPatchSchema.parse({ device: { secretKey: 'x'.repeat(16) } }))).toEqual({
      values: {},
      secretKey: 'x'.repeat(16),
    });
  });
  it('resolves stored rows over defaults, ignoring invalid ones', () => {
    const v = resolveSettings(
      new Map<string, unknown>([
        ['device.healthcheckIntervalSeconds', 7],
        ['device.healthcheckMaxConsecutiveMisses', 'bad'],
      ]),
    );
    expect(v['device.healthcheckIntervalSeconds']).toBe(7);
    expect(v['device.healthcheckMaxConsecutiveMisses']).toBe(3);
  });
});
