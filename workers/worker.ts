import { startWorker, type WorkerConfig } from './roles/worker';
import { runRole } from './entry';

runRole<WorkerConfig>(
  'worker',
  ['DATABASE_URL', 'REDIS_URL', 'MOTH_URL', 'TGDM_URL', 'MANTIS_URL'],
  startWorker,
);
