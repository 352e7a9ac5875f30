import { constantTimeEqual } from './credentials';

/** Who did something, as the audit log keeps it: the label of the operator's token, and from where. */
export interface Actor {
  readonly label: string;
  readonly address: string;
}

/** An operator token and the name it is known by (never the token itself) in the audit log. */
export interface OperatorToken {
  readonly label: string;
  readonly token: string;
}

const LABEL = /^[A-Za-z0-9._-]{1,40}$/;

/**
 * The operator tokens: `ADMIN_TOKEN` (labelled `admin`) and `ADMIN_TOKENS`, `label=token` pairs
 * separated by commas (one per person or tool, so the audit log says who). Throws on a bad label, a
 * token under 32 characters, or a label or token given twice.
 */
export function operatorTokens(adminToken: string | undefined, more: string): OperatorToken[] {
  const tokens: OperatorToken[] = adminToken ? [{ label: 'admin', token: adminToken }] : [];
  for (const pair of more
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const at = pair.indexOf('=');
    const label = pair.slice(0, at);
    const token = pair.slice(at + 1);
    // Nothing of the entry is repeated: a malformed one may be a token.
    if (at < 0 || !LABEL.test(label))
      throw new Error('an entry is not label=token (a label of letters, digits, . _ -, up to 40)');
    if (token.length < 32) throw new Error(`the token of ${label} must have at least 32 characters`);
    if (tokens.some((t) => t.label === label || t.token === token))
      throw new Error(`${label}: each label and each token once`);
    tokens.push({ label, token });
  }
  return tokens;
}

/** The label of the operator token presented, compared with every one in constant time; else undefined. */
export function operatorLabel(tokens: readonly OperatorToken[], presented: string): string | undefined {
  let label: string | undefined;
  for (const t of tokens) if (constantTimeEqual(presented, t.token)) label = t.label;
  return label;
}
