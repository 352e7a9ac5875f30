import Router from '@koa/router';
import { z } from 'zod';
import { registrationSchema } from '../domain/device';
import { groupNameSchema } from '../domain/policy';
import { settingsPatchSchema } from '../domain/settings';
import { abortTaskSchema, createTaskSchema } from '../domain/task';
import { fleetQuery, historyQuery } from './admin';
import { deviceListQuery, maintenanceBody, rotateTokensBody } from './routes/devices';
import { startRecordingBody, startStreamBody } from './routes/media';
import { emptyReportBody } from './routes/tasks';
import { auditQuery } from './routes/audit';
import { feedQuery, streamQuery } from './routes/events';
import { uptimeQueryFields } from './routes/uptime';
import { devicePatchBody, groupPutBody } from './routes/groups';
import { webhookBody } from '../domain/webhooks';
import * as out from './schemas';
import { limitQuery } from './validate';

type Auth = 'none' | 'operator' | 'device' | 'operator-or-device' | 'basic';

interface RouteDoc {
  readonly method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  readonly path: string;
  readonly summary: string;
  readonly auth: Auth;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** Status -> schema (JSON), null (no body) or a media type for non-JSON answers. */
  readonly ok: [number, z.ZodType | null | 'text/html' | 'text/plain' | 'text/event-stream'];
  /** Error statuses this route answers with the standard error body. */
  readonly errors: number[];
}

const reports = (['start', 'complete', 'reject', 'abort'] as const).map((r): RouteDoc => ({
  method: 'post',
  path: `/tasks/{id}/${r}`,
  summary: `The executing device reports: ${r}${r === 'abort' ? ' (the operator may abort too; optional failPoint)' : ''}`,
  auth: r === 'abort' ? 'operator-or-device' : 'device',
  body: r === 'abort' ? abortTaskSchema : emptyReportBody,
  ok: [200, out.taskResponse],
  errors: [400, 401, 403, 404, 409, 413, 415],
}));

/** Every route of the service, described from the same zod schemas that validate requests. */
export const ROUTES: readonly RouteDoc[] = [
  {
    method: 'post',
    path: '/devices',
    summary: 'Register a device',
    auth: 'none',
    body: registrationSchema,
    ok: [201, out.registrationResponse],
    errors: [400, 401, 409, 413, 415, 429],
  },
  {
    method: 'get',
    path: '/devices',
    summary: 'List devices (cursor pagination)',
    auth: 'operator',
    query: deviceListQuery,
    ok: [200, out.deviceListResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/devices/{id}',
    summary: 'A device, with its liveness',
    auth: 'operator-or-device',
    ok: [200, out.deviceDetailResponse],
    errors: [401, 403, 404],
  },
  {
    method: 'delete',
    path: '/devices/{id}',
    summary: 'Delete a device (disconnecting it first)',
    auth: 'operator',
    ok: [204, null],
    errors: [401, 404],
  },
  {
    method: 'post',
    path: '/devices/{id}/token',
    summary: 'Rotate the device token',
    auth: 'operator',
    ok: [200, out.tokenResponse],
    errors: [401, 404],
  },
  {
    method: 'post',
    path: '/devices/{id}/maintenance',
    summary:
      'Open a maintenance window: silent meanwhile, the device is disconnected as MAINTENANCE with no effect but stopping its recordings',
    auth: 'operator',
    body: maintenanceBody,
    ok: [200, out.maintenanceResponse],
    errors: [400, 401, 404, 413, 415],
  },
  {
    method: 'delete',
    path: '/devices/{id}/maintenance',
    summary: 'Close the maintenance window now',
    auth: 'operator',
    ok: [204, null],
    errors: [401, 404],
  },
  {
    method: 'patch',
    path: '/devices/{id}',
    summary:
      "Set the device's group and its own health-check policy (null hands a value back to its group's or the server's); applies from the next round",
    auth: 'operator',
    body: devicePatchBody,
    ok: [200, out.devicePatchResponse],
    errors: [400, 401, 404, 413, 415],
  },
  {
    method: 'get',
    path: '/device-groups',
    summary: 'Device groups with their policies, members and maintenance windows',
    auth: 'operator',
    ok: [200, out.groupsResponse],
    errors: [401],
  },
  {
    method: 'get',
    path: '/device-groups/{name}',
    summary: 'One device group',
    auth: 'operator',
    ok: [200, out.groupResponse],
    errors: [401, 404],
  },
  {
    method: 'put',
    path: '/device-groups/{name}',
    summary:
      "Create a group or replace its health-check policy (over the server's, under each device's own); applies from the next round",
    auth: 'operator',
    body: groupPutBody,
    ok: [200, out.groupResponse],
    errors: [400, 401, 404, 413, 415],
  },
  {
    method: 'delete',
    path: '/device-groups/{name}',
    summary: "Remove a group's policy and window (its devices keep the name and fall to the server's)",
    auth: 'operator',
    ok: [204, null],
    errors: [401, 404],
  },
  {
    method: 'post',
    path: '/device-groups/{name}/maintenance',
    summary: "Open a maintenance window over every device of the group (a device's own window comes first)",
    auth: 'operator',
    body: maintenanceBody,
    ok: [200, out.groupMaintenanceResponse],
    errors: [400, 401, 404, 413, 415],
  },
  {
    method: 'delete',
    path: '/device-groups/{name}/maintenance',
    summary: "Close the group's maintenance window now",
    auth: 'operator',
    ok: [204, null],
    errors: [401, 404],
  },
  {
    method: 'post',
    path: '/devices/tokens/rotate',
    summary: 'Rotate the tokens of many devices ({"all": true}, or ids / status / usesSharedBus)',
    auth: 'operator',
    body: rotateTokensBody,
    ok: [200, out.tokensResponse],
    errors: [400, 401, 413, 415],
  },
  {
    method: 'get',
    path: '/devices/{id}/sessions',
    summary: 'Connection history with effects',
    auth: 'operator',
    query: limitQuery,
    ok: [200, out.sessionsResponse],
    errors: [400, 401, 404],
  },
  {
    method: 'get',
    path: '/server-settings',
    summary: 'Runtime settings',
    auth: 'operator',
    ok: [200, out.settingsResponse],
    errors: [401],
  },
  {
    method: 'patch',
    path: '/server-settings',
    summary: 'JSON merge patch of the settings',
    auth: 'operator',
    body: settingsPatchSchema,
    ok: [200, out.settingsResponse],
    errors: [400, 401, 413, 415],
  },
  {
    method: 'post',
    path: '/devices/{id}/tasks',
    summary: 'Create a PENDING task',
    auth: 'operator',
    body: createTaskSchema,
    ok: [201, out.taskResponse],
    errors: [400, 401, 404, 413, 415],
  },
  {
    method: 'get',
    path: '/devices/{id}/tasks',
    summary: "A device's tasks",
    auth: 'operator-or-device',
    query: limitQuery,
    ok: [200, out.taskListResponse],
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/tasks/{id}',
    summary: 'A task',
    auth: 'operator-or-device',
    ok: [200, out.taskResponse],
    errors: [401, 403, 404],
  },
  ...reports,
  {
    method: 'get',
    path: '/devices/{id}/recordings',
    summary: "A device's TGDM recordings",
    auth: 'operator',
    query: limitQuery,
    ok: [200, out.recordingListResponse],
    errors: [400, 401, 404],
  },
  {
    method: 'post',
    path: '/devices/{id}/recordings',
    summary: 'Start a manual recording',
    auth: 'operator',
    body: startRecordingBody,
    ok: [201, out.recordingResponse],
    errors: [400, 401, 404, 413, 415, 502],
  },
  {
    method: 'post',
    path: '/recordings/{id}/stop',
    summary: 'Stop a recording',
    auth: 'operator',
    ok: [200, out.recordingResponse],
    errors: [401, 404, 409, 502],
  },
  {
    method: 'get',
    path: '/devices/{id}/analysis-streams',
    summary: "A device's Mantis streams",
    auth: 'operator',
    query: limitQuery,
    ok: [200, out.streamListResponse],
    errors: [400, 401, 404],
  },
  {
    method: 'post',
    path: '/devices/{id}/analysis-streams',
    summary: 'Start an analysis stream',
    auth: 'operator',
    body: startStreamBody,
    ok: [201, out.streamResponse],
    errors: [400, 401, 404, 413, 415, 502],
  },
  {
    method: 'post',
    path: '/analysis-streams/{id}/stop',
    summary: 'Stop an analysis stream',
    auth: 'operator',
    ok: [200, out.streamResponse],
    errors: [401, 404, 409, 502],
  },
  {
    method: 'get',
    path: '/admin',
    summary: 'Fleet page',
    auth: 'basic',
    ok: [200, 'text/html'],
    errors: [401],
  },
  {
    method: 'get',
    path: '/admin/devices/{id}',
    summary:
      "A robot's page: what it is and why, its policy, sessions and their effects, tasks, media, audit log",
    auth: 'basic',
    ok: [200, 'text/html'],
    errors: [401, 404],
  },
  {
    method: 'get',
    path: '/admin/devices/{id}/page.json',
    summary: "Data of a robot's page",
    auth: 'basic',
    ok: [200, null],
    errors: [401, 404],
  },
  {
    method: 'post',
    path: '/admin/devices/{id}/token',
    summary: 'A new token for the robot, from its page (same-origin only; in the audit log); shown once',
    auth: 'basic',
    ok: [200, out.tokenResponse],
    errors: [401, 403, 404],
  },
  {
    method: 'post',
    path: '/admin/devices/{id}/maintenance',
    summary: 'A maintenance window for the robot, from its page (same-origin only; in the audit log)',
    auth: 'basic',
    body: maintenanceBody,
    ok: [200, null],
    errors: [400, 401, 403, 404],
  },
  {
    method: 'get',
    path: '/admin/fleet.json',
    summary: 'Data of the fleet page',
    auth: 'basic',
    query: fleetQuery,
    ok: [200, out.fleetResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/admin/events',
    summary: 'The client events, as GET /events, for the fleet page (HTTP Basic)',
    auth: 'basic',
    query: feedQuery,
    ok: [200, out.eventFeedResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/admin/events/stream',
    summary: 'The client events live, as GET /events/stream, for the fleet page (HTTP Basic)',
    auth: 'basic',
    query: streamQuery,
    ok: [200, 'text/event-stream'],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/admin/history.json',
    summary:
      'Connected devices over the last hour or day, and the detection-delay histogram of the last 24 h',
    auth: 'basic',
    query: historyQuery,
    ok: [200, out.historyResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/admin/assets/{file}',
    summary: "The fleet page's charting library (uplot.js, uplot.css), from the installed package",
    auth: 'basic',
    ok: [200, 'text/plain'],
    errors: [401, 404],
  },
  {
    method: 'get',
    path: '/admin/queues',
    summary: 'Queue dashboard (bull-board)',
    auth: 'basic',
    ok: [200, 'text/html'],
    errors: [401],
  },
  {
    method: 'get',
    path: '/devices/{id}/uptime',
    summary:
      'Connected time %, outages by reason and MTBF over a range (default the last 24 h), by hour or day',
    auth: 'operator',
    query: uptimeQueryFields,
    ok: [200, out.deviceUptimeResponse],
    errors: [400, 401, 404],
  },
  {
    method: 'get',
    path: '/fleet/uptime',
    summary: 'The same for the whole fleet (every device that existed in the range)',
    auth: 'operator',
    query: uptimeQueryFields,
    ok: [200, out.fleetUptimeResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/events',
    summary: 'The client events as a durable feed: numbered (seq), signed, after a number',
    auth: 'operator',
    query: feedQuery,
    ok: [200, out.eventFeedResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/events/stream',
    summary:
      'The client events live, as Server-Sent Events (id: seq; data: the signed event); resumes after Last-Event-ID or ?after=; a watcher too slow to read is cut off and resumes',
    auth: 'operator',
    query: streamQuery,
    ok: [200, 'text/event-stream'],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/devices/{id}/commands/stream',
    summary: "A robot's task commands live, as Server-Sent Events, resuming like /events/stream",
    auth: 'operator-or-device',
    query: streamQuery,
    ok: [200, 'text/event-stream'],
    errors: [400, 401, 403],
  },
  {
    method: 'get',
    path: '/devices/{id}/commands',
    summary: "A robot's task commands (TASK_REGISTERED, TASK_ABORTED) as a feed, after a number",
    auth: 'operator-or-device',
    query: feedQuery,
    ok: [200, out.eventFeedResponse],
    errors: [400, 401, 403],
  },
  {
    method: 'post',
    path: '/signing-keys/rotate',
    summary: 'Put a new event signing key in use (the old ones stay published for 30 days)',
    auth: 'operator',
    ok: [200, out.keyRotationResponse],
    errors: [401],
  },
  {
    method: 'post',
    path: '/signing-keys/{kid}/revoke',
    summary:
      'Revoke an event signing key: unpublished at once, never used again (the key in use is replaced first)',
    auth: 'operator',
    ok: [200, out.signingKeysResponse],
    errors: [400, 401, 404],
  },
  {
    method: 'get',
    path: '/.well-known/rollcall-keys',
    summary: 'The public keys events are signed with (JWKS, Ed25519)',
    auth: 'none',
    ok: [200, out.signingKeysResponse],
    errors: [],
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    auth: 'none',
    ok: [200, 'text/plain'],
    errors: [],
  },
  {
    method: 'post',
    path: '/webhooks',
    summary:
      'Subscribe a URL to client events (signed, retried, logged deliveries; offlineForSeconds holds a disconnect and sends it only if the device is still away); the secret is shown here only',
    auth: 'operator',
    body: webhookBody,
    ok: [201, out.webhookCreatedResponse],
    errors: [400, 401, 413, 415],
  },
  {
    method: 'get',
    path: '/webhooks',
    summary: 'The webhooks (never their secrets)',
    auth: 'operator',
    ok: [200, out.webhooksResponse],
    errors: [401],
  },
  {
    method: 'get',
    path: '/webhooks/{id}',
    summary: 'One webhook',
    auth: 'operator',
    ok: [200, out.webhookResponse],
    errors: [401, 404],
  },
  {
    method: 'delete',
    path: '/webhooks/{id}',
    summary: 'Stop a webhook (its pending deliveries are skipped)',
    auth: 'operator',
    ok: [204, null],
    errors: [401, 404],
  },
  {
    method: 'get',
    path: '/webhooks/{id}/deliveries',
    summary: "The webhook's deliveries, newest first: status, attempts, last answer",
    auth: 'operator',
    query: limitQuery,
    ok: [200, out.deliveriesResponse],
    errors: [400, 401, 404],
  },
  {
    method: 'get',
    path: '/audit',
    summary:
      "What operators changed, in order: who (their token's label), what, to what, when, from where, before and after; never a secret",
    auth: 'operator',
    query: auditQuery,
    ok: [200, out.auditResponse],
    errors: [400, 401],
  },
  {
    method: 'get',
    path: '/healthz',
    summary: 'The process answers',
    auth: 'none',
    ok: [200, out.healthResponse],
    errors: [],
  },
  {
    method: 'get',
    path: '/readyz',
    summary: 'Postgres, Redis (and Moth) answer; 503 names what does not',
    auth: 'none',
    ok: [200, out.readyResponse],
    errors: [503],
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    auth: 'none',
    ok: [200, null],
    errors: [],
  },
];

const ERROR_TEXT: Record<number, string> = {
  400: 'Invalid input (VALIDATION_FAILED, MALFORMED_JSON)',
  401: 'Missing or wrong credentials',
  403: 'Not allowed for this caller',
  404: 'Not found',
  409: 'Conflict (name taken, illegal transition, state)',
  413: 'Body over 64 KiB',
  415: 'Body is not JSON',
  429: 'Too many attempts (Retry-After)',
  502: 'TGDM or Mantis failed',
  503: 'Not ready',
};

const SECURITY: Record<Auth, object[]> = {
  none: [],
  operator: [{ operatorToken: [] }],
  device: [{ deviceToken: [] }],
  'operator-or-device': [{ operatorToken: [] }, { deviceToken: [] }],
  basic: [{ operatorBasic: [] }, { operatorToken: [] }],
};

const schema = (s: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(s, { target: 'draft-2020-12', io, unrepresentable: 'any' });

/**
 * A route's operationId, from its method and path (what SDK generators name their methods by):
 * `GET /devices/{id}/sessions` is `getDevicesByIdSessions`. Unique, as method and path are.
 */
export function operationIdOf(r: Pick<RouteDoc, 'method' | 'path'>): string {
  const words = r.path
    .split('/')
    .filter(Boolean)
    .flatMap((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment)?.[1];
      return param ? ['by', param] : segment.split(/[^A-Za-z0-9]+/).filter(Boolean);
    });
  return [r.method, ...words.map((w) => w[0]!.toUpperCase() + w.slice(1))].join('');
}

/** Builds the OpenAPI 3.1 document. */
export function openApiDocument(version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const op: Record<string, unknown> = {
      operationId: operationIdOf(r),
      summary: r.summary,
      security: SECURITY[r.auth],
    };
    const parameters: unknown[] = [];
    if (r.path.includes('{id}'))
      parameters.push({ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } });
    if (r.path.includes('{kid}'))
      parameters.push({ name: 'kid', in: 'path', required: true, schema: { type: 'string' } });
    if (r.path.includes('{file}'))
      parameters.push({ name: 'file', in: 'path', required: true, schema: { type: 'string' } });
    if (r.path.includes('{name}'))
      parameters.push({ name: 'name', in: 'path', required: true, schema: schema(groupNameSchema, 'input') });
    if (r.query) {
      for (const [name, field] of Object.entries(r.query.shape)) {
        parameters.push({ name, in: 'query', required: false, schema: schema(field as z.ZodType, 'input') });
      }
    }
    if (parameters.length) op.parameters = parameters;
    if (r.body) {
      op.requestBody = {
        required: r.method !== 'post' || !r.path.startsWith('/tasks/'),
        content: {
          [r.method === 'patch' ? 'application/merge-patch+json' : 'application/json']: {
            schema: schema(r.body, 'input'),
          },
        },
      };
    }
    const [status, body] = r.ok;
    const responses: Record<string, unknown> = {
      [status]:
        body === null
          ? { description: status === 204 ? 'No content' : 'OK' }
          : typeof body === 'string'
            ? { description: 'OK', content: { [body]: { schema: { type: 'string' } } } }
            : { description: 'OK', content: { 'application/json': { schema: schema(body, 'output') } } },
    };
    // Every authenticated route answers 429 to an address that presented too many wrong credentials,
    // and an operator route 403 to a device's token.
    const implied = r.auth === 'none' ? [] : r.auth === 'operator' ? [403, 429] : [429];
    const errors = [...new Set([...r.errors, ...implied])].sort((a, b) => a - b);
    for (const e of errors) {
      responses[e] = {
        description: ERROR_TEXT[e] ?? 'Error',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    if (r.errors.length)
      responses['5XX'] = {
        description: 'A backing service failed (never caused by input)',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    op.responses = responses;
    (paths[r.path] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'rollcall',
      version,
      description: 'Device registration and connection management for robot fleets (CoBiz-compatible).',
    },
    // Relative: the server that serves this document.
    servers: [{ url: '/', description: 'this rollcall web process' }],
    paths,
    components: {
      schemas: { Error: schema(out.errorResponse, 'output') },
      securitySchemes: {
        operatorToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
        deviceToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'the device token returned at registration',
        },
        operatorBasic: {
          type: 'http',
          scheme: 'basic',
          description: 'any user name, ADMIN_TOKEN as password',
        },
      },
    },
  };
}

export function openApiRoutes(version: string): Router {
  const document = openApiDocument(version);
  const router = new Router();
  router.get('/openapi.json', (ctx) => {
    ctx.body = document;
  });
  return router;
}
