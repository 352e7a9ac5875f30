/** Who makes a request: an operator, or one device with its token. */
export type Caller = { kind: 'operator' } | { kind: 'device'; deviceId: string };
