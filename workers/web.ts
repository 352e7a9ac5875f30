import { startWeb, type WebConfig } from './roles/web';
import { runRole } from './entry';

runRole<WebConfig>(
  'web',
  ['DATABASE_URL', 'REDIS_URL', 'ADMIN_TOKEN', 'MOTH_URL', 'TGDM_URL', 'MANTIS_URL'],
  startWeb,
);
