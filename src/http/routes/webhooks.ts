import Router from '@koa/router';
import { z } from 'zod';
import { notFound } from '../../domain/errors';
import { circuitState, webhookBody, type Webhook } from '../../domain/webhooks';
import type { ApiOperations } from '../../operations';
import type { Delivery } from '../../operations/queries';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { limitQuery, parseInput } from '../validate';

const webhookNotFound = () => notFound('WEBHOOK_NOT_FOUND', 'no such webhook');

function webhookParam(raw: string | undefined): string {
  const parsed = z.uuid().safeParse(raw);
  if (!parsed.success) throw webhookNotFound();
  return parsed.data;
}

/** A webhook as shown after its creation: never its secret. */
const presentWebhook = (w: Webhook) => ({
  id: w.id,
  url: w.url,
  events: w.events,
  offlineForSeconds: w.offlineForSeconds,
  group: w.group,
  expectedDisconnects: w.expectedDisconnects,
  concurrency: w.concurrency,
  createdAt: w.createdAt.toISOString(),
  circuit: {
    state: circuitState(w, Date.now()),
    consecutiveFailures: w.consecutiveFailures,
    openUntil: w.circuitOpenUntil?.toISOString() ?? null,
  },
});

const presentDelivery = (d: Delivery) => ({
  id: d.id,
  eventId: d.eventId,
  eventType: d.eventType,
  deviceId: d.deviceId,
  status: d.status,
  attempts: d.attempts,
  lastStatusCode: d.lastStatusCode,
  lastError: d.lastError,
  dueAt: d.dueAt.toISOString(),
  createdAt: d.createdAt.toISOString(),
  finishedAt: d.finishedAt?.toISOString() ?? null,
});

/** Alerts by webhook: subscriptions to client events, each delivery signed, retried and logged. */
export function webhookRoutes(deps: {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries' | 'configure'>;
}): Router {
  const { auth } = deps;
  const { queries, configure } = deps.ops;
  const router = new Router();

  router.post('/webhooks', async (ctx) => {
    const actor = await auth.operator(ctx);
    const webhook = await configure.createWebhook(actor, parseInput(webhookBody, await readJson(ctx)));
    ctx.status = 201;
    ctx.set('Location', `/webhooks/${webhook.id}`);
    ctx.set('Cache-Control', 'no-store');
    // The signing secret is shown here only.
    ctx.body = { ...presentWebhook(webhook), secret: webhook.secret };
  });

  router.get('/webhooks', async (ctx) => {
    await auth.operator(ctx);
    ctx.body = { webhooks: (await queries.webhooks()).map(presentWebhook) };
  });

  router.get('/webhooks/:id', async (ctx) => {
    await auth.operator(ctx);
    const webhook = await queries.webhook(webhookParam(ctx.params.id));
    if (!webhook) throw webhookNotFound();
    ctx.body = { ...presentWebhook(webhook), pending: await queries.webhookBacklog(webhook.id) };
  });

  router.delete('/webhooks/:id', async (ctx) => {
    const actor = await auth.operator(ctx);
    if (!(await configure.deleteWebhook(actor, webhookParam(ctx.params.id)))) throw webhookNotFound();
    ctx.status = 204;
  });

  router.get('/webhooks/:id/deliveries', async (ctx) => {
    await auth.operator(ctx);
    const id = webhookParam(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    if (!(await queries.webhook(id))) throw webhookNotFound();
    ctx.body = { deliveries: (await queries.deliveries(id, limit)).map(presentDelivery) };
  });

  return router;
}
