import { post, type Answer } from './http-post';

/** An error from TGDM or Mantis, classified for retrying. */
export class IntegrationError extends Error {
  override name = 'IntegrationError';
  constructor(
    message: string,
    /** True when retrying cannot help (a 4xx other than 404/409). */
    readonly permanent: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
}

/**
 * POSTs JSON with a timeout. Network errors, timeouts and 5xx become transient IntegrationErrors;
 * other statuses are returned for the caller to interpret.
 */
export async function postJson(
  url: string,
  body: unknown,
  timeoutMs: number,
  headers: Record<string, string> = {},
): Promise<JsonResponse> {
  let res: Answer;
  try {
    res = await post(
      url,
      JSON.stringify(body ?? {}),
      { 'content-type': 'application/json', ...headers },
      timeoutMs,
    );
  } catch (err) {
    throw new IntegrationError(`${new URL(url).host}: ${(err as Error).message}`, false);
  }
  let parsed: unknown = null;
  try {
    parsed = res.text ? JSON.parse(res.text) : null;
  } catch {
    parsed = res.text;
  }
  if (res.status >= 500)
    throw new IntegrationError(`${new URL(url).pathname}: HTTP ${res.status}`, false, res.status);
  return { status: res.status, body: parsed };
}

/** A 4xx that is not "already gone": retrying the same request cannot succeed. */
export function permanentFailure(path: string, res: JsonResponse): IntegrationError {
  const detail =
    typeof res.body === 'object' && res.body !== null ? JSON.stringify(res.body).slice(0, 200) : '';
  return new IntegrationError(`${path}: HTTP ${res.status} ${detail}`.trim(), true, res.status);
}

/** Resolves `path` under a service's base URL (with or without a trailing slash, path prefix kept). */
export function serviceUrl(baseUrl: string): (path: string) => string {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return (path) => new URL(path, base).toString();
}
