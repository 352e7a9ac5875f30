import { readdirSync, readFileSync } from 'node:fs';
import type { RedisClient } from './connection';

const DIR = new URL('./scripts/', import.meta.url);

const command = (name: string) =>
  `rollcall${name.replace(/(^|-)([a-z])/g, (_, _dash: string, c: string) => c.toUpperCase())}`;

/**
 * Our Lua scripts, `scripts/<name>-<keys>.lua` (as bullmq names its own): how many KEYS a script takes
 * is written once, in its file's name. Each opens with a header naming its KEYS, ARGV and reply. The
 * command of `proofs-only-1.lua` is `rollcallProofsOnly`.
 */
export const SCRIPTS = readdirSync(DIR)
  .filter((file) => file.endsWith('.lua'))
  .map((file) => {
    const named = /^(.+)-(\d+)\.lua$/.exec(file);
    if (!named) throw new Error(`src/redis/scripts/${file}: not named <name>-<number of keys>.lua`);
    return {
      file,
      command: command(named[1]!),
      numberOfKeys: Number(named[2]),
      lua: readFileSync(new URL(file, DIR), 'utf8'),
    };
  });

const defined = new WeakSet<RedisClient>();

/** Every script as a command of this client (defined once per client; ioredis sends each by its SHA). */
export function defineScripts(redis: RedisClient): void {
  if (defined.has(redis)) return;
  for (const s of SCRIPTS) redis.defineCommand(s.command, { numberOfKeys: s.numberOfKeys, lua: s.lua });
  defined.add(redis);
}
