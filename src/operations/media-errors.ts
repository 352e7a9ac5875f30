import { AppError } from '../domain/errors';
import { IntegrationError } from '../integrations/http-client';

/** TGDM or Mantis failing an operator's request is not the client's fault: 502 with what it said. */
export function upstream(service: 'TGDM' | 'MANTIS', err: unknown): AppError {
  if (err instanceof IntegrationError) {
    return new AppError(502, err.permanent ? `${service}_REJECTED` : `${service}_UNAVAILABLE`, err.message);
  }
  return new AppError(502, `${service}_UNAVAILABLE`, (err as Error).message);
}
