import { z } from 'zod';
import { validationFailed } from '../domain/errors';

/** Parses input with a zod schema; a failure is a 400 VALIDATION_FAILED naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw validationFailed(
    result.error.issues.map((issue) => ({ field: issue.path.map(String).join('.'), message: issue.message })),
  );
}

/** A `true`/`false` query parameter, as a boolean (absent: undefined). */
export const booleanQuery = z
  .enum(['true', 'false'])
  .transform((v) => v === 'true')
  .optional();

/** `?limit=` of the list routes that have no other filter. */
export const limitQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(50) });
