import type { Actor } from './operators';

/** Who makes a request: an operator, or one device with its token. */
export type Caller = ({ kind: 'operator' } & Actor) | { kind: 'device'; deviceId: string };
