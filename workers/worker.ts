import { startWorker } from '../src/roles/worker';
import type { BackedConfig } from '../src/roles/services';
import { runRole } from './entry';

runRole<BackedConfig>('worker', ['DATABASE_URL', 'REDIS_URL'], startWorker);
