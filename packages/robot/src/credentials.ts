import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

/** What a robot needs to be heard: its id, its token and the path of its own bus on Moth. */
export interface Credentials {
  readonly id: string;
  readonly token: string;
  /** `channels.deviceManagement` of its registration: the path (and query) of its bus. */
  readonly busPath: string;
  /** `channels.moth` of its registration: Moth's base URL as robots reach it, when the service says. */
  readonly moth?: string;
}

export interface Registration {
  /** rollcall's base URL. */
  readonly api: string;
  /** The registration secret (the service's `device.secretKey`). */
  readonly secret: string;
  readonly name: string;
  readonly tracks?: readonly { readonly name: string; readonly type: string }[];
  readonly actions?: readonly string[];
  readonly group?: string;
}

/** A refusal by the service, with its code (`DEVICE_NAME_TAKEN`, `INVALID_SECRET_KEY`, ...). */
export class RollcallError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(`${message} (HTTP ${status} ${code})`);
    this.status = status;
    this.code = code;
  }
}

export async function refusal(res: Response): Promise<RollcallError> {
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  return new RollcallError(
    res.status,
    body.error?.code ?? 'HTTP_ERROR',
    body.error?.message ?? res.statusText,
  );
}

/** Registers the robot (`POST /devices`). The token is shown this once: keep it. */
export async function register(r: Registration): Promise<Credentials> {
  const res = await fetch(new URL('/devices', r.api), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name: r.name,
      secretKey: r.secret,
      tracks: r.tracks ?? [],
      actions: r.actions ?? [],
      ...(r.group ? { group: r.group } : {}),
    }),
  });
  if (res.status !== 201) throw await refusal(res);
  const body = (await res.json()) as {
    id: string;
    token: string;
    channels: { deviceManagement: string; moth?: string };
  };
  const { deviceManagement: busPath, moth } = body.channels;
  return { id: body.id, token: body.token, busPath, ...(moth ? { moth } : {}) };
}

/**
 * The credentials kept in `file` (only its owner may read it), or, the first time, a registration
 * whose credentials are written there before they are returned.
 */
export async function loadOrRegister(file: string, r: Registration): Promise<Credentials> {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Credentials;
  const credentials = await register(r);
  saveCredentials(file, credentials);
  return credentials;
}

/** Writes credentials whole or not at all (a new file renamed over the old), readable by the owner only. */
export function saveCredentials(file: string, credentials: Credentials): void {
  writeFileSync(`${file}.new`, JSON.stringify(credentials, null, 2), { mode: 0o600 });
  renameSync(`${file}.new`, file);
}
