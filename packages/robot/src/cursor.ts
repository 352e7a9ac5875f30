import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { CursorStore } from '@rollcall/client';

/**
 * The number of the last command acted on, kept in a file across restarts (written whole, before the
 * next command is taken): a command is acted on once, even when Moth or the feed brings it again.
 */
export function fileCursor(file: string): CursorStore {
  return {
    load: () => (existsSync(file) ? Number(readFileSync(file, 'utf8')) || 0 : undefined),
    save: (seq) => {
      writeFileSync(`${file}.new`, String(seq));
      renameSync(`${file}.new`, file);
    },
  };
}
