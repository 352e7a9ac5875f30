import { readFileSync } from 'node:fs';

const loaded = new Map<string, string>();

/**
 * The text of a Lua script of ours (`src/redis/scripts/<name>.lua`, its header naming KEYS, ARGV and
 * the reply), read once per process; ioredis then sends it by its SHA.
 */
export function script(name: string): string {
  let text = loaded.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8');
    loaded.set(name, text);
  }
  return text;
}
