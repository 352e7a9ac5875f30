import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths never written to the log, whatever a caller passes: tokens, secrets, authorization headers.
 * The HTTP layer logs no bodies at all; this is the second line of defence.
 */
const REDACT = [
  'token',
  'secretKey',
  'adminToken',
  '*.token',
  '*.secretKey',
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
];

export function createLogger(level: string, name?: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = { level, redact: { paths: REDACT, censor: '[redacted]' } };
  if (name) options.name = name;
  return destination ? pino(options, destination) : pino(options);
}
