import { BlockList, isIP } from 'node:net';
import { addressFamily as family, bareHost as bare, parseAddressList } from './addresses';

/**
 * Where a webhook may not reach (RFC 6890 special-purpose ranges): the service's own host and
 * network, link-local addresses (cloud metadata at 169.254.169.254 among them), carrier-grade NAT,
 * multicast and reserved ranges, and every IPv6 form that embeds an IPv4 address (mapped, NAT64).
 */
const REFUSED: readonly (readonly [string, number, 'ipv4' | 'ipv6', string])[] = [
  ['0.0.0.0', 8, 'ipv4', 'a "this network" address'],
  ['10.0.0.0', 8, 'ipv4', 'a private address'],
  ['100.64.0.0', 10, 'ipv4', 'a carrier-grade NAT address'],
  ['127.0.0.0', 8, 'ipv4', 'a loopback address'],
  ['169.254.0.0', 16, 'ipv4', 'a link-local (metadata) address'],
  ['172.16.0.0', 12, 'ipv4', 'a private address'],
  ['192.0.0.0', 24, 'ipv4', 'a protocol-assignment address'],
  ['192.168.0.0', 16, 'ipv4', 'a private address'],
  ['198.18.0.0', 15, 'ipv4', 'a benchmarking address'],
  ['224.0.0.0', 3, 'ipv4', 'a multicast or reserved address'],
  ['::', 128, 'ipv6', 'the unspecified address'],
  ['::1', 128, 'ipv6', 'a loopback address'],
  ['::ffff:0:0', 96, 'ipv6', 'an IPv4-mapped address'],
  ['64:ff9b::', 96, 'ipv6', 'a NAT64 address'],
  ['fc00::', 7, 'ipv6', 'a private (unique local) address'],
  ['fe80::', 10, 'ipv6', 'a link-local address'],
  ['ff00::', 8, 'ipv6', 'a multicast address'],
];

/**
 * Which addresses a webhook may reach: any but the refused ranges, unless allowed by name or by
 * range (`WEBHOOK_ALLOW_HOSTS`: hosts, addresses and CIDRs, comma-separated, for receivers on the
 * premises). Checked on every address a name resolves to, at each connection (a name that resolves
 * elsewhere later, DNS rebinding, is checked again).
 */
export function createDestinationPolicy(allowList: string) {
  const { ranges: allowed, names: allowedHosts } = parseAddressList('WEBHOOK_ALLOW_HOSTS', allowList, {
    names: true,
  });
  const refused = REFUSED.map(([network, prefix, kind, why]) => {
    const range = new BlockList();
    range.addSubnet(network, prefix, kind);
    return { range, kind, why };
  });

  return {
    /** Whether a host name is allowed whatever it resolves to. */
    allowsHost: (host: string) => allowedHosts.has(bare(host)),
    /** Why an address may not be reached, or undefined when it may. */
    refusal(address: string): string | undefined {
      const ip = bare(address);
      const kind = isIP(ip);
      if (kind === 0) return undefined;
      if (allowed.check(ip, family(ip))) return undefined;
      const hit = refused.find((r) => r.kind === family(ip) && r.range.check(ip, r.kind));
      return hit && `refused: ${ip} is ${hit.why} (see WEBHOOK_ALLOW_HOSTS)`;
    },
  };
}

export type DestinationPolicy = ReturnType<typeof createDestinationPolicy>;

/** Why a URL's host, when it is an address itself, may not be reached (a name is checked when resolved). */
export function refusalOfUrl(policy: DestinationPolicy, url: string): string | undefined {
  const host = new URL(url).hostname;
  return policy.allowsHost(host) ? undefined : policy.refusal(host);
}
