import Router from '@koa/router';
import { settingsPatchSchema } from '../../domain/settings';
import type { SettingsService } from '../../settings-service';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { parseInput } from '../validate';

export function settingsRoutes(deps: { auth: Authenticator; settings: SettingsService }): Router {
  const router = new Router();
  router.get('/server-settings', async (ctx) => {
    await deps.auth.operator(ctx);
    ctx.body = await deps.settings.present();
  });
  router.patch('/server-settings', async (ctx) => {
    const actor = await deps.auth.operator(ctx);
    const patch = parseInput(settingsPatchSchema, await readJson(ctx));
    await deps.settings.apply(patch, actor);
    ctx.body = await deps.settings.present();
  });
  return router;
}
