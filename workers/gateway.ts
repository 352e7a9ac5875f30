import { startGateway, type GatewayConfig } from './roles/gateway';
import { runRole } from './entry';

runRole<GatewayConfig>('gateway', ['DATABASE_URL', 'REDIS_URL', 'MOTH_URL'], startGateway);
