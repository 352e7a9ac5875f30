import type { DestinationPolicy } from '../domain/destinations';
import type { SecretHash } from '../domain/credentials';
import type { SessionEffects } from '../domain/effects';
import type { SettingValues } from '../domain/settings';
import type { Db } from '../db/knex';
import type { Mantis } from '../integrations/mantis';
import type { Tgdm } from '../integrations/tgdm';
import type { Metrics } from '../metrics';
import type { AttemptLimiter } from '../redis/rate-limit';
import { createConfigure } from './configure';
import { createCreateTask } from './create-task';
import { createDeleteDevice } from './delete-device';
import { createQueries } from './queries';
import { createRegisterDevice } from './register-device';
import { createReportTask } from './report-task';
import { createRotateTokens, type TokenCache } from './rotate-tokens';
import { createStartAnalysisStream } from './start-analysis-stream';
import { createStartRecording } from './start-recording';
import { createStopAnalysisStreams } from './stop-analysis-streams';
import { createStopRecording } from './stop-recording';

export interface ApiOperationDeps {
  readonly db: Db;
  readonly tgdm: Tgdm;
  readonly mantis: Mantis;
  /** Base URL of Moth as TGDM and Mantis reach it. */
  readonly mothUrl: string;
  readonly liveness: TokenCache & { forgetDevice(deviceId: string): Promise<void> };
  readonly registrationSecret: () => Promise<SecretHash | undefined>;
  /** The runtime settings (the caps on devices and webhooks among them). */
  readonly settings: () => Promise<SettingValues>;
  readonly badSecrets: AttemptLimiter;
  readonly countAuthFailure: (surface: 'registration') => void;
  /** Where webhooks may reach. */
  readonly webhookDestinations: DestinationPolicy;
  /** Events of its types a webhook's pump keeps waiting in the stream (WEBHOOK_MAX_BACKLOG). */
  readonly webhookMaxBacklog: number;
  /** Enqueues the effects a disconnect wrote (may be a no-op before the effect workers exist). */
  readonly enqueueEffects: (d: readonly SessionEffects[]) => Promise<void>;
  /** Where transitions are counted (a delete disconnects). */
  readonly metrics: Pick<Metrics, 'transitions' | 'disconnects'>;
}

/** Everything the HTTP API does, bound to its dependencies: routes parse, call one of these, present. */
export function createApiOperations(deps: ApiOperationDeps) {
  return {
    queries: createQueries(deps.db, deps.webhookMaxBacklog),
    configure: createConfigure(deps.db, deps.webhookDestinations, deps.settings),
    registerDevice: createRegisterDevice(deps),
    deleteDevice: createDeleteDevice(deps),
    rotateTokens: createRotateTokens(deps),
    createTask: createCreateTask(deps),
    reportTask: createReportTask(deps),
    startRecording: createStartRecording(deps),
    stopRecording: createStopRecording(deps),
    startAnalysisStream: createStartAnalysisStream(deps),
    stopAnalysisStreams: createStopAnalysisStreams(deps),
  };
}

export type ApiOperations = ReturnType<typeof createApiOperations>;
