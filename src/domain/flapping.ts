/**
 * When a device counts as flapping, and how long its connect effects then wait: the rule a connect
 * applies (src/db/transitions.ts evaluates it in the connect's one statement, over the device's
 * recent sessions, so a batch of connects costs no round trip more).
 */
export interface FlapPolicy {
  /** More failures (MISSED_HEARTBEATS disconnects) than this within the window... */
  readonly threshold: number;
  readonly windowSeconds: number;
  /** ...and its connect effects wait for it to stay connected this long. */
  readonly holdSeconds: number;
}

/** The flap policy from the settings. */
export const flapPolicy = (s: {
  'device.flapThreshold': number;
  'device.flapWindowSeconds': number;
  'device.flapHoldSeconds': number;
}): FlapPolicy => ({
  threshold: s['device.flapThreshold'],
  windowSeconds: s['device.flapWindowSeconds'],
  holdSeconds: s['device.flapHoldSeconds'],
});
