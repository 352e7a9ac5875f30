import Router from '@koa/router';
import { z } from 'zod';
import { notFound } from '../../domain/errors';
import {
  fullPolicy,
  groupNameSchema,
  policyFieldsSchema,
  resolvePolicy,
  type ServerPolicy,
} from '../../domain/policy';
import type { ApiOperations } from '../../operations';
import type { DeviceGroup } from '../../operations/queries';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../validate';
import { deviceIdParam, deviceNotFound, maintenanceBody, maintenanceWindow, presentWindow } from './devices';

/** `PATCH /devices/:id`: a JSON merge patch of the device's group and its own policy. */
export const devicePatchBody = z
  .strictObject({
    group: groupNameSchema.nullable().optional(),
    healthcheck: policyFieldsSchema.optional(),
  })
  .refine((b) => b.group !== undefined || b.healthcheck !== undefined, 'nothing to change');

/** `PUT /device-groups/:name`: the group's whole policy (a field left out falls to the server's). */
export const groupPutBody = z.strictObject({ healthcheck: policyFieldsSchema.default({}) });

const groupNotFound = () => notFound('GROUP_NOT_FOUND', 'no such device group');

function groupParam(raw: string | undefined): string {
  const parsed = groupNameSchema.safeParse(raw);
  if (!parsed.success) throw groupNotFound();
  return parsed.data;
}

function presentGroup(g: DeviceGroup) {
  return {
    name: g.name,
    healthcheck: g.policy,
    members: g.members,
    maintenance: presentWindow(g.maintenance),
  };
}

/**
 * Health-check policy per device and per group, and maintenance per group. Evaluation and the
 * gateways read policies from Postgres each round, so a change applies from the next round.
 */
export function groupRoutes(deps: {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries' | 'configure'>;
  serverPolicy: () => Promise<ServerPolicy>;
}): Router {
  const { auth } = deps;
  const { queries, configure } = deps.ops;
  const router = new Router();

  router.patch('/devices/:id', async (ctx) => {
    const actor = await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const body = parseInput(devicePatchBody, await readJson(ctx));
    if (!(await configure.devicePolicy(actor, id, { group: body.group, policy: body.healthcheck ?? {} })))
      throw deviceNotFound();
    const device = (await queries.liveDevice(id))!;
    ctx.body = {
      id,
      group: device.group,
      healthcheck: resolvePolicy(device.policy, device.groupPolicy, await deps.serverPolicy()),
    };
  });

  router.get('/device-groups', async (ctx) => {
    await auth.operator(ctx);
    ctx.body = { groups: (await queries.groups()).map(presentGroup) };
  });

  router.get('/device-groups/:name', async (ctx) => {
    await auth.operator(ctx);
    const group = await queries.group(groupParam(ctx.params.name));
    if (!group) throw groupNotFound();
    ctx.body = presentGroup(group);
  });

  router.put('/device-groups/:name', async (ctx) => {
    const actor = await auth.operator(ctx);
    const name = groupParam(ctx.params.name);
    const body = parseInput(groupPutBody, await readJson(ctx));
    await configure.groupPolicy(actor, name, fullPolicy(body.healthcheck));
    ctx.body = presentGroup((await queries.group(name))!);
  });

  router.delete('/device-groups/:name', async (ctx) => {
    const actor = await auth.operator(ctx);
    if (!(await configure.deleteGroup(actor, groupParam(ctx.params.name)))) throw groupNotFound();
    ctx.status = 204;
  });

  // A window over every device of the group (a device's own window, if open, comes first).
  router.post('/device-groups/:name/maintenance', async (ctx) => {
    const actor = await auth.operator(ctx);
    const name = groupParam(ctx.params.name);
    const body = parseInput(maintenanceBody, await readJson(ctx));
    const window = maintenanceWindow(body);
    if (!(await configure.groupMaintenance(actor, name, window))) throw groupNotFound();
    ctx.body = { name, maintenance: presentWindow(window) };
  });

  router.delete('/device-groups/:name/maintenance', async (ctx) => {
    const actor = await auth.operator(ctx);
    if (!(await configure.groupMaintenance(actor, groupParam(ctx.params.name), null))) throw groupNotFound();
    ctx.status = 204;
  });

  return router;
}
