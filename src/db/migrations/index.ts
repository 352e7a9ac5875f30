import type { Knex } from 'knex';
import * as devices from './20261125000001_devices';
import * as settings from './20261125000002_settings';
import * as outbox from './20261125000003_outbox';
import * as connectionSessions from './20261125000004_connection_sessions';
import * as effects from './20261125000005_effects';
import * as tasks from './20261125000006_tasks';
import * as recordingsAndStreams from './20261125000007_recordings_and_streams';
import * as effectsNaturalKey from './20261127000008_effects_natural_key';
import * as devicesStatusUnindexed from './20261127000009_devices_status_unindexed';
import * as deviceBuses from './20261201000010_device_buses';
import * as heartbeatProofs from './20261201000011_heartbeat_proofs';
import * as eventStreams from './20261201000012_event_streams';
import * as signingKeys from './20261201000013_signing_keys';
import * as tokenExposed from './20261201000014_token_exposed';
import * as maintenance from './20261201000015_maintenance';
import * as deviceGroups from './20261201000016_device_groups';
import * as flapping from './20261201000017_flapping';
import * as webhooks from './20261201000018_webhooks';
import * as sessionHeartbeats from './20261201000019_session_heartbeats';
import * as numberedAtCommit from './20261203000020_numbered_at_commit';
import * as webhookCircuits from './20261203000021_webhook_circuits';
import * as unstableBuses from './20261204000022_unstable_buses';
import * as signingKeyRevocation from './20261204000023_signing_key_revocation';
import * as auditLog from './20261204000024_audit_log';
import * as linkQuality from './20261204000025_link_quality';
import * as unpublishedByStream from './20261204000026_unpublished_by_stream';
import * as webhookConcurrency from './20261204000027_webhook_concurrency';
import * as numberInOneCall from './20261204000028_number_in_one_call';
import * as numberedKindsTold from './20261205000029_numbered_kinds_told';
import * as deliveriesInStreamOrder from './20261205000030_deliveries_in_stream_order';

// Listed statically (not read from a folder) so migrations load the same way under tsx, vitest
// and the knex CLI, with no loader for .ts files needed at run time.
const MIGRATIONS: Record<string, Knex.Migration> = {
  '20261125000001_devices': devices,
  '20261125000002_settings': settings,
  '20261125000003_outbox': outbox,
  '20261125000004_connection_sessions': connectionSessions,
  '20261125000005_effects': effects,
  '20261125000006_tasks': tasks,
  '20261125000007_recordings_and_streams': recordingsAndStreams,
  '20261127000008_effects_natural_key': effectsNaturalKey,
  '20261127000009_devices_status_unindexed': devicesStatusUnindexed,
  '20261201000010_device_buses': deviceBuses,
  '20261201000011_heartbeat_proofs': heartbeatProofs,
  '20261201000012_event_streams': eventStreams,
  '20261201000013_signing_keys': signingKeys,
  '20261201000014_token_exposed': tokenExposed,
  '20261201000015_maintenance': maintenance,
  '20261201000016_device_groups': deviceGroups,
  '20261201000017_flapping': flapping,
  '20261201000018_webhooks': webhooks,
  '20261201000019_session_heartbeats': sessionHeartbeats,
  '20261203000020_numbered_at_commit': numberedAtCommit,
  '20261203000021_webhook_circuits': webhookCircuits,
  '20261204000022_unstable_buses': unstableBuses,
  '20261204000023_signing_key_revocation': signingKeyRevocation,
  '20261204000024_audit_log': auditLog,
  '20261204000025_link_quality': linkQuality,
  '20261204000026_unpublished_by_stream': unpublishedByStream,
  '20261204000027_webhook_concurrency': webhookConcurrency,
  '20261204000028_number_in_one_call': numberInOneCall,
  '20261205000029_numbered_kinds_told': numberedKindsTold,
  '20261205000030_deliveries_in_stream_order': deliveriesInStreamOrder,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: () => Promise.resolve(Object.keys(MIGRATIONS).sort()),
  getMigrationName: (name) => name,
  getMigration: (name) => Promise.resolve(MIGRATIONS[name]!),
};
